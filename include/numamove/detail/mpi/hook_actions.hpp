// What the PMPI hooks of numamove/mpi/hooks.hpp do: read the policy from the environment, place
// the rank after MPI_Init, place each rank's segment after MPI_Win_allocate_shared, print the
// locality report before MPI_Finalize. Nothing here throws, aborts or changes an MPI return code;
// what could not be done is printed to stderr once and kept for the report.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/mpi/hook_actions.hpp is internal: include a public numamove header"
#endif

#include <mpi.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../../mpi.hpp"

namespace numamove::detail::mpi::hooks {

/// The environment variables (docs/mpi.md has the table) and the MPI_Info key of a window.
inline constexpr const char* policy_variable = "NUMAMOVE_MPI_POLICY";
inline constexpr const char* mode_variable = "NUMAMOVE_MPI_MODE";
inline constexpr const char* pin_variable = "NUMAMOVE_MPI_PIN";
inline constexpr const char* windows_variable = "NUMAMOVE_MPI_WINDOWS";
inline constexpr const char* report_variable = "NUMAMOVE_MPI_REPORT";
inline constexpr const char* verbose_variable = "NUMAMOVE_MPI_VERBOSE";
inline constexpr const char* window_info_key = "numamove_window";

/// The hooks' settings, from the environment.
struct settings {
  numamove::mpi::policy_options placement;  // policy local, strict, no pinning by default
  bool windows = true;                      // place each rank's window segment
  std::string report;                       // "" none, "stderr", "stdout" or a file
  bool verbose = false;
  std::string problem;  // a bad value: the hooks then do nothing
};

/// Reads `name` as one of `choices` (the first is the default when unset); a value outside them
/// sets `problem` and leaves `index` at the default.
inline void read_choice(const char* name, std::initializer_list<const char*> choices, int& index,
                        std::string& problem) {
  index = 0;
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return;
  int i = 0;
  std::string listed;
  for (const char* choice : choices) {
    if (std::strcmp(value, choice) == 0) {
      index = i;
      return;
    }
    listed += (i++ ? ", " : "") + std::string(choice);
  }
  if (problem.empty()) problem = std::string(name) + "=" + value + " is not one of " + listed;
}

inline settings read_settings() {
  settings s;
  int policy_index = 0, mode = 0, pin = 0, windows = 0, verbose = 0;
  read_choice(policy_variable, {"local", "none", "spread", "interleave"}, policy_index, s.problem);
  read_choice(mode_variable, {"bind", "preferred"}, mode, s.problem);
  read_choice(pin_variable, {"no", "yes"}, pin, s.problem);
  read_choice(windows_variable, {"place", "none"}, windows, s.problem);
  read_choice(verbose_variable, {"0", "1"}, verbose, s.problem);
  using numamove::mpi::policy;
  constexpr policy policies[] = {policy::local, policy::none, policy::spread, policy::interleave};
  s.placement.policy = policies[policy_index];
  s.placement.strict = mode == 0;
  s.placement.pin_unbound = pin == 1;
  s.windows = windows == 0;
  s.verbose = verbose == 1;
  if (const char* report = std::getenv(report_variable);
      report != nullptr && std::strcmp(report, "none") != 0)
    s.report = report;
  return s;
}

/// The process's hook state: the settings, read once, and what could not be done.
struct state {
  std::once_flag read;
  settings config;
  std::atomic<bool> placed{false};
  std::mutex lock;
  std::set<std::string> said;  // each problem goes to stderr once
  std::string notes;           // and to the report
};
inline state process;

inline const settings& config() {
  std::call_once(process.read, [] { process.config = read_settings(); });
  return process.config;
}

inline int world_rank() noexcept {
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

/// Prints `what` once per kind, prefixed with the rank, and keeps it for the report.
inline void note(const std::string& kind, const std::string& what) noexcept {
  try {
    const std::lock_guard<std::mutex> lock(process.lock);
    if (!process.said.insert(kind).second) return;
    const std::string line = "numamove-mpi: rank " + std::to_string(world_rank()) + ": " + what;
    std::fprintf(stderr, "%s\n", line.c_str());
    process.notes += line + "\n";
  } catch (...) {
    // Out of memory while reporting: nothing more can be said.
  }
}

inline std::string describe(const std::error_code& e) {
  return e.message() + " (" + e.category().name() + " " + std::to_string(e.value()) + ")";
}

/// After a successful MPI_Init or MPI_Init_thread (C or Fortran), once.
inline void after_init() noexcept {
  if (process.placed.exchange(true)) return;
  try {
    const settings& s = config();
    if (!s.problem.empty()) {
      if (world_rank() == 0)
        std::fprintf(stderr,
                     "numamove-mpi: %s; the hooks do nothing (docs/mpi.md lists the values)\n",
                     s.problem.c_str());
      return;
    }
    if (s.placement.policy == numamove::mpi::policy::none) return;
    const numamove::mpi::rank_placement r = numamove::mpi::place_rank(s.placement);
    if (r.error)
      note("init",
           std::string("MPI_Init: policy ") + to_string(r.policy) + ": " + describe(r.error));
    if (r.threads_missed != 0)
      note("threads",
           "MPI_Init: " + std::to_string(r.threads_missed) + " threads kept their memory policy");
    if (r.pages_not_moved != 0) {
      std::string statuses;
      for (const auto& [status, pages] : r.not_moved_statuses)
        statuses += " " + std::to_string(pages) + " with " + std::to_string(status);
      note("moved", "MPI_Init: " + std::to_string(r.pages_not_moved) +
                        " pages stayed on other nodes" +
                        (statuses.empty() ? "" : " (" + statuses.substr(1) + ")"));
    }
    if (s.verbose)
      std::fprintf(
          stderr,
          "numamove-mpi: rank %d: policy %s on node(s)%s, %zu threads, %zu KiB moved via %s\n",
          r.binding.rank, to_string(r.policy),
          [&] {
            std::string n;
            for (const int x : r.nodes) n += " " + std::to_string(x);
            return n;
          }()
              .c_str(),
          r.threads, r.moved_bytes / 1024, numamove::to_string(r.used));
  } catch (const std::exception& e) {
    note("init", std::string("MPI_Init: ") + e.what());
  } catch (...) {
    note("init", "MPI_Init: unknown exception");
  }
}

/// True when the window's MPI_Info says "numamove_window" = "none" (or, without the key, the
/// environment turned window placement off).
inline bool window_wanted(MPI_Info info) {
  if (!config().problem.empty()) return false;
  bool wanted = config().windows;
  if (info == MPI_INFO_NULL) return wanted;
  char value[16] = {};
  int found = 0;
  if (MPI_Info_get(info, window_info_key, static_cast<int>(sizeof value) - 1, value, &found) ==
          MPI_SUCCESS &&
      found) {
    if (std::strcmp(value, "place") == 0)
      wanted = true;
    else if (std::strcmp(value, "none") == 0)
      wanted = false;
    else
      note("info", std::string("MPI_Win_allocate_shared: info ") + window_info_key + "=" + value +
                       " is not one of place, none; the window is left as MPI made it");
  }
  return wanted;
}

/// After a successful MPI_Win_allocate_shared (C or Fortran).
inline void after_window(MPI_Win win, MPI_Info info) noexcept {
  try {
    if (!window_wanted(info)) return;
    numamove::mpi::window_options options;
    options.strict = config().placement.strict;
    const numamove::mpi::window_placement r = numamove::mpi::place_window_segments(win, options);
    if (r.error) note("window", "MPI_Win_allocate_shared: " + describe(r.error));
    if (r.needs_move_all != 0)
      note("window-shared", "MPI_Win_allocate_shared: " + std::to_string(r.needs_move_all) +
                                " pages other ranks had mapped stayed: moving them needs "
                                "MPOL_MF_MOVE_ALL (CAP_SYS_NICE)");
  } catch (const std::exception& e) {
    note("window", std::string("MPI_Win_allocate_shared: ") + e.what());
  } catch (...) {
    note("window", "MPI_Win_allocate_shared: unknown exception");
  }
}

/// Before MPI_Finalize (C or Fortran): the locality report, when asked; collective.
inline void before_finalize() noexcept {
  try {
    const settings& s = config();
    if (s.report.empty() || !s.problem.empty()) return;
    const numamove::mpi::locality_table table = numamove::mpi::gather_locality();
    // The notes of every rank, at rank 0.
    std::string mine;
    {
      const std::lock_guard<std::mutex> lock(process.lock);
      mine = process.notes;
    }
    int ranks = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    const int length = static_cast<int>(mine.size());
    std::vector<int> lengths(static_cast<std::size_t>(ranks));
    MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    std::vector<int> offsets(lengths.size());
    int total = 0;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      offsets[r] = total;
      total += lengths[r];
    }
    std::string all(static_cast<std::size_t>(total), '\0');
    MPI_Gatherv(mine.data(), length, MPI_CHAR, all.data(), lengths.data(), offsets.data(), MPI_CHAR,
                0, MPI_COMM_WORLD);
    if (world_rank() != 0) return;
    FILE* out = s.report == "stderr"   ? stderr
                : s.report == "stdout" ? stdout
                                       : std::fopen(s.report.c_str(), "w");
    if (out == nullptr) {
      note("report",
           "MPI_Finalize: cannot write the report to " + s.report + ": " + std::strerror(errno));
      return;
    }
    std::fprintf(
        out,
        "numamove-mpi: locality at MPI_Finalize (policy %s, %s), private memory of each rank\n%s%s",
        to_string(s.placement.policy), s.placement.strict ? "bind" : "preferred",
        table.to_string().c_str(), all.empty() ? "numamove-mpi: no problems\n" : all.c_str());
    if (out != stderr && out != stdout)
      std::fclose(out);
    else
      std::fflush(out);
  } catch (const std::exception& e) {
    note("report", std::string("MPI_Finalize: ") + e.what());
  } catch (...) {
    note("report", "MPI_Finalize: unknown exception");
  }
}

}  // namespace numamove::detail::mpi::hooks
