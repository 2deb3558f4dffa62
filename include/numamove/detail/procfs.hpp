// What the kernel tells about this process and machine through /proc and /sys.
// These files stay readable where the NUMA system calls are refused (containers).
#pragma once

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace numamove::detail {

inline std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

/// The whole file as text; empty when it cannot be read.
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
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
    if (end - at > key.size() && text.compare(at, key.size(), key) == 0 && text[at + key.size()] == ':') {
      const std::size_t first = text.find_first_not_of(" \t", at + key.size() + 1);
      return first == std::string::npos || first >= end ? std::string{} : text.substr(first, end - first);
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
  const std::string caps = status_field(read_text("/proc/self/status"), "CapEff");
  return !caps.empty() && (std::strtoull(caps.c_str(), nullptr, 16) >> 23 & 1ULL) != 0;
}

/// Kernel release as major * 1000 + minor (6.1 -> 6001), 0 when unknown.
inline int kernel_release() noexcept {
  static const int release = [] {
    utsname name{};
    int major = 0;
    int minor = 0;
    if (::uname(&name) != 0 || std::sscanf(name.release, "%d.%d", &major, &minor) != 2) return 0;
    return major * 1000 + minor;
  }();
  return release;
}

}  // namespace numamove::detail
