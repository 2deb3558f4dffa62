// What the kernel tells about a process through /proc: the one place numamove names /proc
// files. These files stay readable where the NUMA system calls are refused (containers).
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/linux/proc.hpp is internal: include a public numamove header"
#endif

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fd.hpp"
#include "syscalls.hpp"

namespace numamove::detail {

/// "self" for 0 (move_pages' convention for the calling process), else the pid.
inline std::string proc_dir(int pid) {
  return pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid);
}

/// Opens /proc/<pid>/<name> (pid 0: /proc/self/<name>; `name` may hold slashes, as
/// "task/12/status"). Allocates nothing and is async-signal-safe, so the migrator may call it
/// while pages are write-protected. Returns the descriptor, or none with errno set (open(2)'s,
/// ENAMETOOLONG when the path exceeds 255 bytes).
inline unique_fd open_proc(int pid, const char* name, int flags = O_RDONLY) noexcept {
  char path[256];
  std::size_t at = 0;
  const auto put = [&](const char* text) {
    while (*text != '\0' && at + 1 < sizeof path) path[at++] = *text++;
    return *text == '\0';
  };
  bool fits = put("/proc/");
  if (pid == 0) {
    fits = fits && put("self");
  } else {
    char digits[16];
    int n = 0;
    for (unsigned value = static_cast<unsigned>(pid); value != 0 || n == 0; value /= 10)
      digits[n++] = static_cast<char>('0' + value % 10);
    while (n > 0 && at + 1 < sizeof path) path[at++] = digits[--n];
  }
  fits = fits && put("/") && put(name);
  if (!fits) {
    errno = ENAMETOOLONG;
    return unique_fd{};
  }
  path[at] = '\0';
  return unique_fd(::open(path, flags | O_CLOEXEC));
}

/// Opens /proc/self/task/<tid>/status. Async-signal-safe, as open_proc().
inline unique_fd open_thread_status(pid_t tid) noexcept {
  char name[32] = "task/";
  std::size_t at = 5;
  char digits[16];
  int n = 0;
  for (unsigned value = static_cast<unsigned>(tid); value != 0 || n == 0; value /= 10)
    digits[n++] = static_cast<char>('0' + value % 10);
  while (n > 0) name[at++] = digits[--n];
  for (const char* rest = "/status"; *rest != '\0'; ++rest) name[at++] = *rest;
  name[at] = '\0';
  return open_proc(0, name);
}

/// The whole file as text; empty when it cannot be read.
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// /proc/<pid>/<name> as text (pid 0: this process); empty when it cannot be read.
inline std::string read_proc(int pid, const std::string& name) {
  return read_text(proc_dir(pid) + "/" + name);
}

/// The names in directory `path`, without "." and ".."; empty when it cannot be read.
inline std::vector<std::string> directory_names(const std::string& path) {
  std::vector<std::string> names;
  const std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), &::closedir);
  if (!dir) return names;
  while (const dirent* entry = ::readdir(dir.get()))
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0)
      names.emplace_back(entry->d_name);
  return names;
}

/// Thread ids of this process (/proc/self/task), the caller's included.
inline std::vector<pid_t> thread_ids() {
  std::vector<pid_t> ids;
  for (const std::string& name : directory_names("/proc/self/task"))
    ids.push_back(static_cast<pid_t>(std::strtol(name.c_str(), nullptr, 10)));
  if (ids.empty()) ids.push_back(this_thread_id());  // unreadable
  return ids;
}

/// Parses a kernel list such as "0-3,8,10-11" into ascending ids.
inline std::vector<int> parse_id_list(const std::string& list) {
  std::vector<int> ids;
  std::size_t pos = 0;
  while (pos < list.size()) {
    char* end = nullptr;
    const long first = std::strtol(list.c_str() + pos, &end, 10);
    if (end == list.c_str() + pos) break;
    long last = first;
    pos = static_cast<std::size_t>(end - list.c_str());
    if (pos < list.size() && list[pos] == '-') {
      last = std::strtol(list.c_str() + pos + 1, &end, 10);
      pos = static_cast<std::size_t>(end - list.c_str());
    }
    for (long id = first; id <= last; ++id) ids.push_back(static_cast<int>(id));
    if (pos < list.size() && list[pos] == ',') ++pos;
  }
  return ids;
}

/// The value of "Key:" in a /proc/<pid>/status style file, without surrounding blanks; empty
/// when the key is not there.
inline std::string status_field(const std::string& text, const std::string& key) {
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    if (end - at > key.size() && text.compare(at, key.size(), key) == 0 &&
        text[at + key.size()] == ':') {
      const std::size_t first = text.find_first_not_of(" \t", at + key.size() + 1);
      return first == std::string::npos || first >= end ? std::string{}
                                                        : text.substr(first, end - first);
    }
    at = end + 1;
  }
  return {};
}

/// Nodes the calling thread's cpuset allows it to allocate on (Mems_allowed_list).
/// Read on every call: a cpuset can change while the process runs.
inline std::vector<int> mems_allowed() {
  return parse_id_list(status_field(read_text("/proc/thread-self/status"), "Mems_allowed_list"));
}

/// True when the effective capability set holds CAP_SYS_NICE (capability 23).
inline bool has_cap_sys_nice() {
  const std::string caps = status_field(read_proc(0, "status"), "CapEff");
  return !caps.empty() && (std::strtoull(caps.c_str(), nullptr, 16) >> 23 & 1ULL) != 0;
}

}  // namespace numamove::detail
