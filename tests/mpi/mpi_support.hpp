// Helpers for the MPI tests: starting an MPI job and reading what its ranks printed (driver
// side), and the kernel's view of a rank's memory policy (rank side).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace numamove_test {

// ------------------------------------------------------------------------- driver side ----

struct job_result {
  int status = -1;  // the exit status of mpirun, or -1 when it did not exit
  bool timed_out = false;
  std::string output;  // stdout and stderr of every rank, interleaved as they came

  /// Lines of the output that contain `text`.
  std::size_t count(const std::string& text) const {
    std::size_t n = 0;
    for (std::size_t at = output.find(text); at != std::string::npos;
         at = output.find(text, at + text.size()))
      ++n;
    return n;
  }
};

inline bool in_guest() {
  return std::getenv("NUMAMOVE_VM_SHAPE") != nullptr;
}

/// A test file (an app, the preload library): `variable` names it in ctest's environment; in the
/// guests, where the environment does not say, it lies next to this binary.
inline std::string test_file(const char* variable, const char* name) {
  if (const char* path = std::getenv(variable); path != nullptr && *path != '\0') return path;
  char self[4096] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string("./x");
  return dir.substr(0, dir.rfind('/') + 1) + name;
}

/// Ranks per job: one per CPU, 2 to 4.
inline int job_ranks() {
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  return cpus < 2 ? 2 : cpus > 4 ? 4 : static_cast<int>(cpus);
}

/// mpirun with `ranks` ranks and the options every job needs here: root may run it, more ranks
/// than CPUs are allowed, only the shared-memory transports, and in the guests no remote
/// launcher (plm isolated). `environment` is exported to the ranks (-x).
inline std::vector<std::string> mpirun(int ranks, const std::vector<std::string>& environment,
                                       const std::vector<std::string>& options = {}) {
  std::vector<std::string> line = {"mpirun", "-np", std::to_string(ranks), "--oversubscribe",
                                   "--mca",  "btl", "self,vader",          "--mca",
                                   "pml",    "ob1"};
  if (::geteuid() == 0) line.push_back("--allow-run-as-root");
  if (in_guest()) line.insert(line.end(), {"--mca", "plm", "isolated"});
  for (const std::string& kv : environment) line.insert(line.end(), {"-x", kv});
  line.insert(line.end(), options.begin(), options.end());
  return line;
}

/// Runs `argv` (PATH is searched) with stdout and stderr captured, killed after `timeout`. The
/// child enters the cgroup `cgroup` first when one is given.
inline job_result run_job(const std::vector<std::string>& argv,
                          std::chrono::seconds timeout = std::chrono::seconds(240),
                          const std::string& cgroup = "") {
  job_result result;
  char name[] = "/tmp/numamove-mpi-job-XXXXXX";
  const int out = ::mkstemp(name);
  if (out < 0) return result;
  ::unlink(name);
  const pid_t child = ::fork();
  if (child == 0) {
    ::setpgid(0, 0);
    if (!cgroup.empty()) {
      std::ofstream procs(cgroup + "/cgroup.procs");
      procs << ::getpid() << std::flush;
      if (!procs) ::_exit(126);
    }
    ::dup2(out, 1);
    ::dup2(out, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > give_up) {
      result.timed_out = true;
      ::kill(-child, SIGKILL);
      ::waitpid(child, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!result.timed_out && WIFEXITED(status)) result.status = WEXITSTATUS(status);
  ::lseek(out, 0, SEEK_SET);
  char buffer[65536];
  for (ssize_t n; (n = ::read(out, buffer, sizeof buffer)) > 0;)
    result.output.append(buffer, static_cast<std::size_t>(n));
  ::close(out);
  return result;
}

inline std::string shown(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& a : argv) line += (line.empty() ? "" : " ") + a;
  return line;
}

// --------------------------------------------------------------------------- rank side ----

/// The calling thread's memory policy as get_mempolicy(2) reports it.
struct thread_policy {
  int mode = -1;
  std::set<int> nodes;
};

inline thread_policy policy_of_this_thread() {
  thread_policy p;
  unsigned long mask[16] = {};
  if (::syscall(SYS_get_mempolicy, &p.mode, mask, 16 * 8 * sizeof(unsigned long), nullptr, 0) != 0)
    return p;
  for (int n = 0; n < 16 * 64; ++n)
    if (mask[n / 64] >> (n % 64) & 1) p.nodes.insert(n);
  return p;
}

inline constexpr int mpol_default = 0;
inline constexpr int mpol_preferred = 1;
inline constexpr int mpol_bind = 2;
inline constexpr int mpol_interleave = 3;

}  // namespace numamove_test
