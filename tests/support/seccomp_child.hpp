// Run a function in a forked child, under the Docker-like NUMA filter of
// tests/support/seccomp_filter.hpp (or none), that reports back to the parent while it runs, and
// let the parent check, with its own move_pages(2) query of the child's pid, what the child's
// code placed.
//
//   numamove_test::seccomp_child child([&](numamove_test::child_channel& ch) {
//     ... runs in the child, under the filter ...
//     ch.send(reinterpret_cast<std::intptr_t>(buffer));   // values for the parent, in order
//     return 0;                                          // the child's exit code
//   });
//   const numamove_test::child_report& r = child.wait();  // until the function returned
//   REQUIRE(r.finished);                                  // (r.problem says why not)
//   ... parent: move_pages(child.pid(), ...) query of r.values[0] ...
//   CHECK(child.release() == 0);                          // lets it exit, reaps it
//
// The child stays alive, with its memory intact, between returning from the function and
// release(), so that the parent can query its pages. Values are 64-bit integers; note() sends
// text for the parent's failure messages. A child that needs the parent in the middle calls
// ch.wait_for_parent(), which returns once the parent calls proceed(). Nothing in the child
// may use Catch2's assertions: report through the channel and assert in the parent.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "support/child.hpp"
#include "support/seccomp_filter.hpp"

namespace numamove_test {

struct child_options {
  numa_filter filter = numa_filter::docker_default;
  /// Drop CAP_SYS_NICE from the child's effective and permitted sets before the filter is built,
  /// as in a container started without it (Docker's default capability set lacks it).
  bool drop_cap_sys_nice = false;
  /// How long wait() and receive() wait for the child before killing it.
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
};

/// What a child's function and the child process did, as the parent saw it.
struct child_report {
  bool started = false;              ///< the filter is in place and the function began
  bool finished = false;             ///< the function returned (the child then waits for release())
  int code = -1;                     ///< the function's return value, when finished
  std::vector<std::int64_t> values;  ///< every value the child sent, in order
  std::string notes;                 ///< every note the child sent, one per line
  std::string problem;               ///< why not finished: setup failure, signal, timeout

  /// Everything above in one line and the notes after it, for failure messages.
  std::string describe() const {
    std::string text = "child: started=" + std::to_string(started) +
                       " finished=" + std::to_string(finished) + " code=" + std::to_string(code) +
                       " problem='" + problem + "' values";
    for (const std::int64_t v : values) {
      text += ' ';
      text += std::to_string(v);
    }
    return text + "\n" + notes;
  }
};

/// The child's end of the conversation.
class child_channel {
 public:
  void send(std::int64_t value) { put(tag_value, &value, sizeof value); }
  void note(const std::string& text) { put(tag_note, text.data(), text.size()); }
  /// Blocks until the parent calls seccomp_child::proceed() (false when the parent is gone).
  bool wait_for_parent() {
    char byte = 0;
    ssize_t got;
    do got = ::read(from_parent_, &byte, 1);
    while (got < 0 && errno == EINTR);
    return got == 1 && byte == 'p';
  }

 private:
  friend class seccomp_child;
  enum : std::uint32_t {
    tag_value = 1,
    tag_note = 2,
    tag_started = 3,
    tag_setup_failed = 4,
    tag_done = 5
  };
  child_channel(int to_parent, int from_parent)
      : to_parent_(to_parent), from_parent_(from_parent) {}

  void put(std::uint32_t tag, const void* payload, std::size_t length) {
    const auto len32 = static_cast<std::uint32_t>(length);
    char header[8];
    std::memcpy(header, &tag, 4);
    std::memcpy(header + 4, &len32, 4);
    std::vector<char> record(header, header + 8);
    const char* bytes = static_cast<const char*>(payload);
    if (bytes != nullptr) record.insert(record.end(), bytes, bytes + length);
    const char* at = record.data();
    std::size_t left = record.size();
    while (left > 0) {
      const ssize_t wrote = ::write(to_parent_, at, left);
      if (wrote < 0 && errno == EINTR) continue;
      if (wrote <= 0) ::_exit(124);  // the parent is gone
      at += wrote;
      left -= static_cast<std::size_t>(wrote);
    }
  }

  int to_parent_;
  int from_parent_;
};

/// A forked child running one function under the NUMA filter. Not copyable; the destructor
/// kills and reaps a child that is still there.
class seccomp_child {
 public:
  template <class Function>
  explicit seccomp_child(Function&& function, child_options options = {}) : options_(options) {
    int up[2];
    int down[2];
    if (::pipe2(up, O_CLOEXEC) != 0) throw_errno("pipe");
    if (::pipe2(down, O_CLOEXEC) != 0) {
      ::close(up[0]);
      ::close(up[1]);
      throw_errno("pipe");
    }
    std::fflush(nullptr);  // what the parent buffered must not be printed twice
    pid_ = ::fork();
    if (pid_ < 0) {
      const int error = errno;
      for (int fd : {up[0], up[1], down[0], down[1]}) ::close(fd);
      errno = error;
      throw_errno("fork");
    }
    if (pid_ == 0) {
      ::close(up[0]);
      ::close(down[1]);
      run_child(std::forward<Function>(function), child_channel(up[1], down[0]), options);
    }
    ::close(up[1]);
    ::close(down[0]);
    from_child_ = up[0];
    to_child_ = down[1];
  }

  seccomp_child(const seccomp_child&) = delete;
  seccomp_child& operator=(const seccomp_child&) = delete;

  ~seccomp_child() {
    if (!reaped_ && pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (from_child_ >= 0) ::close(from_child_);
    if (to_child_ >= 0) ::close(to_child_);
  }

  pid_t pid() const { return pid_; }

  /// Reads what the child sent until it has sent `count` values in all, finished or died.
  /// Returns the report so far; report().values.size() >= count unless something went wrong.
  const child_report& receive(std::size_t count) {
    while (report_.values.size() < count && read_record()) {
    }
    return report_;
  }

  /// Waits until the function returned (or the child died, or the timeout passed).
  const child_report& wait() {
    while (read_record()) {
    }
    return report_;
  }

  /// Lets a child blocked in wait_for_parent() go on.
  void proceed() {
    const char byte = 'p';
    while (::write(to_child_, &byte, 1) < 0 && errno == EINTR) {
    }
  }

  /// Lets the child exit and reaps it. Returns the function's return value, 125 when the
  /// function threw, 126 when the filter could not be installed, or 128 + signal when the
  /// child was killed.
  int release() {
    if (to_child_ >= 0) {
      ::close(to_child_);  // EOF: wait_for_parent() returns false, the final wait ends
      to_child_ = -1;
    }
    wait();
    return reap();
  }

  const child_report& report() const { return report_; }

 private:
  template <class Function>
  [[noreturn]] static void run_child(Function&& function, child_channel channel,
                                     const child_options& options) {
    // The test framework's handlers for fatal signals belong to the parent: a child that
    // crashes must die of the signal, which the parent reports.
    for (const int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTERM, SIGINT})
      ::signal(sig, SIG_DFL);
    int error = 0;
    if (options.drop_cap_sys_nice) error = drop_capability(CAP_SYS_NICE);
    if (error == 0) error = install_numa_filter(options.filter);
    if (error != 0) {
      const std::int64_t value = error;
      channel.put(child_channel::tag_setup_failed, &value, sizeof value);
      ::_exit(126);
    }
    channel.put(child_channel::tag_started, nullptr, 0);
    int code = 125;
    try {
      code = function(channel);
    } catch (const std::exception& e) {
      channel.note(std::string("the child's function threw: ") + e.what());
    } catch (...) {
      channel.note("the child's function threw a non-standard exception");
    }
    const std::int64_t value = code;
    channel.put(child_channel::tag_done, &value, sizeof value);
    // Stay, memory intact, until the parent releases us (EOF); bytes from proceed() calls
    // nobody waited for are read and dropped.
    for (;;) {
      char byte = 0;
      const ssize_t got = ::read(channel.from_parent_, &byte, 1);
      if (got == 0 || (got < 0 && errno != EINTR)) break;
    }
    ::_exit(code & 0xff);
  }

  [[noreturn]] static void throw_errno(const char* what) {
    throw std::system_error(errno, std::generic_category(), std::string("seccomp_child: ") + what);
  }

  bool read_exact(void* into, std::size_t length) {
    auto* at = static_cast<char*>(into);
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    while (length > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        report_.problem = "timed out after " + std::to_string(options_.timeout.count()) +
                          " ms waiting for the child";
        ::kill(pid_, SIGKILL);
        return false;
      }
      pollfd fd{from_child_, POLLIN, 0};
      const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;
      const ssize_t got = ::read(from_child_, at, length);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;  // EOF: the child is gone
      at += got;
      length -= static_cast<std::size_t>(got);
    }
    return true;
  }

  // One record; false when there will be no more (done, died, timed out).
  bool read_record() {
    if (report_.finished || !report_.problem.empty() || from_child_ < 0) return false;
    std::uint32_t header[2];
    if (!read_exact(header, sizeof header)) return died();
    std::vector<char> payload(header[1]);
    if (header[1] && !read_exact(payload.data(), payload.size())) return died();
    std::int64_t value = 0;
    if (payload.size() == sizeof value) std::memcpy(&value, payload.data(), sizeof value);
    switch (header[0]) {
      case child_channel::tag_value:
        report_.values.push_back(value);
        return true;
      case child_channel::tag_note:
        report_.notes.append(payload.begin(), payload.end()).append("\n");
        return true;
      case child_channel::tag_started:
        report_.started = true;
        return true;
      case child_channel::tag_setup_failed:
        report_.problem =
            std::string("the child could not set itself up (drop CAP_SYS_NICE, then the ") +
            to_string(options_.filter) + " filter): " + std::strerror(static_cast<int>(value));
        return false;
      case child_channel::tag_done:
        report_.finished = true;
        report_.code = static_cast<int>(value);
        return false;
      default:
        report_.problem = "garbled message from the child";
        return false;
    }
  }

  bool died() {
    if (report_.problem.empty()) {
      const int status = reap();
      report_.problem = status >= 128
                            ? "the child was killed by signal " + std::to_string(status - 128) +
                                  " (" + strsignal(status - 128) + ")"
                            : "the child exited with status " + std::to_string(status) +
                                  " before its function returned";
    }
    return false;
  }

  int reap() {
    if (reaped_) return exit_code_;
    int status = 0;
    pid_t got;
    do got = ::waitpid(pid_, &status, 0);
    while (got < 0 && errno == EINTR);
    reaped_ = true;
    exit_code_ = got < 0               ? 255
                 : WIFEXITED(status)   ? WEXITSTATUS(status)
                 : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                       : 255;
    return exit_code_;
  }

  child_options options_;
  pid_t pid_ = -1;
  int from_child_ = -1;
  int to_child_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  child_report report_;
};

/// Runs `function` in a child under the filter, waits for it, releases it: for checks that
/// need nothing from the parent while the child is alive.
template <class Function>
child_report run_in_seccomp_child(Function&& function, child_options options = {}) {
  seccomp_child child(std::forward<Function>(function), options);
  child_report report = child.wait();
  const int status = child.release();
  if (report.finished && status != (report.code & 0xff))
    report.problem = "the child exited with status " + std::to_string(status) +
                     " after its function returned " + std::to_string(report.code);
  return report;
}

}  // namespace numamove_test
