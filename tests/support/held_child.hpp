// A forked child that sets something up, then stays alive, unchanged, until the guard dies:
// the other process a test needs for copy-on-write sharing, shared mappings and pid lookups.
#pragma once

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace numamove_test {

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

}  // namespace numamove_test
