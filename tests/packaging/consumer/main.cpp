// A user's program: includes numaif.h first, then numamove, with strict warnings.
#include <numaif.h>

#include <cstdio>
#include <numamove/numamove.hpp>

int main() {
  const int node = numamove::topology::system().nodes().front();
  numamove::vector<int> data(1 << 16, 1,
                             numamove::allocator<int>(numamove::placement::on_node(node)));
  numamove::migrate_options options;
  options.flags = MPOL_MF_MOVE;
  const numamove::migration_result moved = numamove::migrate(data, node, options);
  std::printf("numamove %d: %zu pages on node %d\n", NUMAMOVE_VERSION, moved.already_there, node);
  return moved && moved.already_there == moved.status.size() ? 0 : 1;
}
