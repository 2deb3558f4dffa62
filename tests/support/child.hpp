// Test helpers: forked children (one that runs a check and exits, one that stays unchanged
// while the test needs another process), a pid that no process has, and capabilities to check
// and drop. tests/support/seccomp_child.hpp has the child that reports back while it runs.
#pragma once

#include <dirent.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>

namespace numamove_test {

/// Runs `body` in a forked child and returns its exit status: body()'s return value, or
/// 128 + the signal that killed it.
template <class Body>
int in_child(Body body) {
  std::fflush(nullptr);  // what the parent buffered must not be printed twice
  const pid_t child = ::fork();
  if (child == 0) ::_exit(body());
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// How many threads this process has now (the entries of /proc/self/task).
inline std::size_t threads_of_process() {
  std::size_t n = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (const dirent* entry = ::readdir(dir))
      if (entry->d_name[0] != '.') ++n;
    ::closedir(dir);
  }
  return n;
}

/// A pid that no process has: a child that has exited and been reaped.
inline pid_t vanished_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

/// A forked child that sets something up, then stays alive, unchanged, until the guard dies:
/// the other process a test needs for copy-on-write sharing, shared mappings and pid lookups.
class held_child {
 public:
  /// Forks; the child runs `set_up()` and then waits. Returns once the child has run it.
  /// pid() is -1 when the pipes or the fork failed.
  template <class SetUp>
  explicit held_child(SetUp set_up) {
    int ready[2];
    if (::pipe(ready) != 0) return;
    if (::pipe(release_) != 0) {
      ::close(ready[0]);
      ::close(ready[1]);
      return;
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(release_[1]);
      set_up();
      char byte = 1;
      (void)!::write(ready[1], &byte, 1);
      (void)!::read(release_[0], &byte, 1);  // returns at end of file: the parent let go
      ::_exit(0);
    }
    char byte = 0;
    if (pid_ > 0) (void)!::read(ready[0], &byte, 1);
    ::close(ready[0]);
    ::close(ready[1]);
  }
  ~held_child() {
    if (release_[1] >= 0) ::close(release_[1]);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    if (release_[0] >= 0) ::close(release_[0]);
  }
  held_child(const held_child&) = delete;
  held_child& operator=(const held_child&) = delete;

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int release_[2] = {-1, -1};
};

/// True when capability `cap` (e.g. CAP_SYS_NICE) is in the calling thread's effective set.
inline bool has_effective_capability(int cap) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  const auto word = static_cast<unsigned>(cap) / 32;
  const auto bit = static_cast<unsigned>(cap) % 32;
  return word < _LINUX_CAPABILITY_U32S_3 && (data[word].effective >> bit & 1u) != 0;
}

/// Removes `cap` from the calling thread's effective, permitted and inheritable sets, as in a
/// container started without it. Returns 0 or an errno.
inline int drop_capability(int cap) {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return errno;
  const auto word = static_cast<unsigned>(cap) / 32;
  const std::uint32_t mask = ~(1u << (static_cast<unsigned>(cap) % 32));
  data[word].effective &= mask;
  data[word].permitted &= mask;
  data[word].inheritable &= mask;
  return ::syscall(SYS_capset, &header, data) == 0 ? 0 : errno;
}

}  // namespace numamove_test
