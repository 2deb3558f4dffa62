// An MPI program that knows nothing of numamove: memory touched before MPI_Init, memory
// allocated after, a shared-memory window that rank 0 writes whole. Built twice: plain (for
// LD_PRELOAD of libnumamove_mpi_preload.so) and linked with numamove::mpi_hooks. verify.cpp
// checks with the kernel's answers where its memory went.
#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
void numamove_test_touch_elsewhere(void* data, long bytes);
int numamove_test_check(const char* what, const void* data, long bytes);
void numamove_test_write_window(MPI_Fint win);
int numamove_test_check_window(MPI_Fint win);
int numamove_test_summary();
}

int main(int argc, char** argv) {
  const long bytes = 8 << 20;
  char* before = static_cast<char*>(std::malloc(bytes));  // untouched until the next line
  numamove_test_touch_elsewhere(before, bytes);
  MPI_Init(&argc, &argv);
  std::vector<char> after(8 << 20, 1);
  numamove_test_check("touched before MPI_Init", before, bytes);
  numamove_test_check("allocated after MPI_Init", after.data(), static_cast<long>(after.size()));

  MPI_Comm host = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
  MPI_Win win = MPI_WIN_NULL;
  void* base = nullptr;
  MPI_Win_allocate_shared(3 * 4096 + 100, 1, MPI_INFO_NULL, host, &base, &win);
  numamove_test_write_window(MPI_Win_c2f(win));
  numamove_test_check_window(MPI_Win_c2f(win));
  MPI_Win_free(&win);
  MPI_Comm_free(&host);

  const int status = numamove_test_summary();
  std::free(before);
  MPI_Finalize();
  return status;
}
