// Next-touch: mark an array so that each page moves to the node of the thread that touches it
// first, whatever loop does the touching, then behaves as before.
#include <omp.h>

#include <cstdio>
#include <vector>

#include <numamove/numamove.hpp>
#include <numamove/openmp.hpp>

int main() {
  std::vector<double> data(1 << 20, 1.0);  // 8 MiB, all written by this thread: on its node
  {
    numamove::openmp::next_touch marked(data.data(), data.size());
    // A dynamic schedule: which thread touches which page is known only when it happens.
#pragma omp parallel for schedule(dynamic, 4096)
    for (long i = 0; i < static_cast<long>(data.size()); ++i)
      data[static_cast<std::size_t>(i)] *= 2.0;
    std::printf(
        "%zu pages: %zu moved to their toucher's node, %zu were there already, %zu stayed\n",
        marked.pages(), marked.moved(), marked.local(), marked.failed());
  }  // unmarked: pages nobody touched keep their place
  for (const auto& [node, bytes] : numamove::bytes_per_node(data.data(), data.size()))
    std::printf("node %d holds %zu KiB\n", node, bytes / 1024);
  return 0;
}
