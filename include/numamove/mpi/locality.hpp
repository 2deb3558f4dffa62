// numamove/mpi/locality.hpp: the locality report numamove::mpi::gather_locality() gathers: per
// rank, its binding, bytes per node and the local fraction, printed as a table. Reached through
// numamove/mpi.hpp.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <cstddef>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "binding.hpp"

namespace numamove::mpi {

/// One rank's line of the report.
struct rank_locality {
  rank_binding binding;         ///< where it ran (local_rank: among the ranks of its host)
  std::string host;             ///< MPI_Get_processor_name
  std::size_t bytes = 0;        ///< bytes looked at
  std::size_t local_bytes = 0;  ///< of those, bytes on binding.node
  /// bytes per node, or per negative page status (-ENOENT: never touched)
  std::map<int, std::size_t> bytes_on;

  /// local_bytes / bytes; 1 for no bytes.
  double fraction() const noexcept {
    return bytes == 0 ? 1.0 : static_cast<double>(local_bytes) / static_cast<double>(bytes);
  }
};

/// The report as the root rank has it (other ranks get an empty one).
struct locality_table {
  std::vector<rank_locality> ranks;  ///< by rank

  /// Local bytes over all bytes, every rank together; 1 for no bytes.
  double fraction() const noexcept {
    std::size_t bytes = 0;
    std::size_t local = 0;
    for (const rank_locality& r : ranks) {
      bytes += r.bytes;
      local += r.local_bytes;
    }
    return bytes == 0 ? 1.0 : static_cast<double>(local) / static_cast<double>(bytes);
  }

  /// One line per rank: rank, host, local rank, CPUs, node, pinned, local fraction, MiB per node.
  /// Empty for an empty table (the ranks other than the root).
  std::string to_string() const {
    if (ranks.empty()) return {};
    std::set<int> columns;
    for (const rank_locality& r : ranks)
      for (const auto& [node, bytes] : r.bytes_on) columns.insert(node);
    std::string out = "rank  host             local  cpus          node  pinned  local%";
    char cell[96];
    for (const int c : columns) {
      if (c >= 0)
        std::snprintf(cell, sizeof cell, "  %8s", ("N" + std::to_string(c) + " MiB").c_str());
      else
        std::snprintf(cell, sizeof cell, "  %8s",
                      c == -2 ? "absent" : ("err" + std::to_string(-c)).c_str());
      out += cell;
    }
    out += "\n";
    for (const rank_locality& r : ranks) {
      std::string cpus;
      for (std::size_t i = 0; i < r.binding.cpus.size(); ++i) {
        std::size_t j = i;
        while (j + 1 < r.binding.cpus.size() && r.binding.cpus[j + 1] == r.binding.cpus[j] + 1) ++j;
        cpus += (cpus.empty() ? "" : ",") + std::to_string(r.binding.cpus[i]) +
                (j > i ? "-" + std::to_string(r.binding.cpus[j]) : "");
        i = j;
      }
      std::snprintf(cell, sizeof cell, "%4d  %-15.15s  %5d  %-12.12s  %4d  %-6s  %6.1f",
                    r.binding.rank, r.host.c_str(), r.binding.local_rank, cpus.c_str(),
                    r.binding.node, r.binding.pinned ? "yes" : "no", 100.0 * r.fraction());
      out += cell;
      for (const int c : columns) {
        const auto found = r.bytes_on.find(c);
        std::snprintf(
            cell, sizeof cell, "  %8.1f",
            found == r.bytes_on.end() ? 0.0 : static_cast<double>(found->second) / (1 << 20));
        out += cell;
      }
      out += "\n";
    }
    return out;
  }
};

}  // namespace numamove::mpi

#include "../detail/public_header_end.hpp"
