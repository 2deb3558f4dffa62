// libFuzzer target: move_pages' arguments (pid, flags, addresses of every kind of page, target
// nodes, arrays that cannot be read or written) through backend::kernel and backend::userspace.
// It checks that nothing crashes (ASan, UBSan), that no page's contents change, that every
// return value and status is one move_pages may give, and that both backends agree wherever the
// pages are already on their target (this machine may have one node), save the differences
// docs/semantics.md documents. Build and run: tests/fuzz/CMakeLists.txt.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <numamove/numamove.hpp>

namespace {

struct region {
  char* data;
  std::size_t pages;
  bool contents;  // holds a pattern that must survive every call
  int kind;       // what the rules see: 0 plain, 1 locked, 2 kept from fork, 3 shared
};

struct pool {
  std::vector<region> regions;
  std::vector<unsigned char> expected;  // pattern per region page, first byte
  char* unwritable = nullptr;           // a read-only page, for status arrays
  char* edge = nullptr;                 // a page followed by an unmapped one, for arrays
  std::size_t page = 0;
  int home = 0;
  int max_node = 0;

  pool() {
    page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    home = numamove::topology::system().nodes().front();
    max_node = numamove::topology::system().nodes().back();
    const auto make = [&](std::size_t pages, int prot, int flags) {
      return static_cast<char*>(::mmap(nullptr, pages * page, prot, flags | MAP_ANONYMOUS, -1, 0));
    };
    char* touched = make(8, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    char* holes = make(4, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    holes[page] = 5;
    (void)*reinterpret_cast<volatile char*>(holes + 2 * page);  // the zero page
    char* readonly = make(2, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    char* none = make(2, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    char* shared = make(2, PROT_READ | PROT_WRITE, MAP_SHARED);
    char* locked = make(1, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    char* kept = make(1, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (char* r : {touched, readonly, none, shared, locked, kept})
      for (std::size_t p = 0; p < 8 && (r == touched || p < 2); ++p)
        if (r != locked && r != kept)
          std::memset(r + p * page, static_cast<int>(p + 1 + (r - touched) % 97), page);
    std::memset(locked, 61, page);
    std::memset(kept, 62, page);
    ::mprotect(readonly, 2 * page, PROT_READ);
    ::mprotect(none, 2 * page, PROT_NONE);
    ::mlock(locked, page);
    ::madvise(kept, page, MADV_DONTFORK);
    regions = {{touched, 8, true, 0}, {holes, 4, false, 0}, {readonly, 2, true, 0},
               {none, 2, false, 0},   {shared, 2, true, 3}, {locked, 1, true, 1},
               {kept, 1, true, 2}};
    for (const region& r : regions)
      for (std::size_t p = 0; p < r.pages; ++p)
        expected.push_back(r.contents ? static_cast<unsigned char>(r.data[p * page]) : 0);
    unwritable = make(1, PROT_READ, MAP_PRIVATE);
    edge = make(2, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    ::munmap(edge + page, page);
  }

  void check_contents() const {
    std::size_t k = 0;
    for (const region& r : regions)
      for (std::size_t p = 0; p < r.pages; ++p, ++k)
        if (r.contents && static_cast<unsigned char>(r.data[p * page]) != expected[k]) {
          std::fprintf(stderr, "contents of region %p page %zu changed\n",
                       static_cast<void*>(r.data), p);
          std::abort();
        }
  }
};

pool& the_pool() {
  static pool p;
  return p;
}

// A byte reader over the input; zeros once it runs out.
struct input {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t at = 0;
  std::uint8_t next() { return at < size ? data[at++] : 0; }
};

bool allowed_status(int s, int max_node) {
  if (s >= 0) return s <= max_node;
  switch (-s) {
    case ENOENT:
    case EACCES:
    case EPERM:
    case EBUSY:
    case EFAULT:
    case ENOMEM:
    case EIO:
    case EINVAL:
    case ENODATA:
      return true;
    default:
      return false;
  }
}

bool allowed_errno(int e) {
  switch (e) {
    case EINVAL:
    case EPERM:
    case ESRCH:
    case ENODEV:
    case EACCES:
    case EFAULT:
    case ENOMEM:
    case EOPNOTSUPP:
    case EHOSTUNREACH:
      return true;
    default:
      return false;
  }
}

pid_t vanished_pid() {
  static const pid_t gone = [] {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    ::waitpid(child, nullptr, 0);
    return child;
  }();
  return gone;
}

struct call {
  int pid = 0;
  int flags = MPOL_MF_MOVE;
  std::vector<void*> pages;
  std::vector<int> nodes;
  bool query = false;
  int pages_array = 0;   // 0 ours, 1 nullptr, 2 cut short by an unmapped page
  int status_array = 0;  // 0 ours, 1 nullptr, 2 read-only
  bool force = false;
};

struct outcome {
  long rc;
  int error;
  std::vector<int> status;
};

outcome run(const call& c, numamove::backend path) {
  pool& p = the_pool();
  const std::size_t n = c.pages.size();
  std::vector<void*> pages = c.pages;
  void** pages_arg = pages.data();
  if (c.pages_array == 1) pages_arg = nullptr;
  if (c.pages_array == 2) {
    // As many entries as fit before the unmapped page, the rest unreadable.
    auto** at = reinterpret_cast<void**>(p.edge + p.page - (n / 2) * sizeof(void*));
    for (std::size_t i = 0; i < n / 2; ++i) at[i] = pages[i];
    pages_arg = at;
  }
  outcome o{0, 0, std::vector<int>(n + 1, 12345)};
  int* status_arg = o.status.data();
  if (c.status_array == 1) status_arg = nullptr;
  if (c.status_array == 2) status_arg = reinterpret_cast<int*>(p.unwritable);
  const int* nodes_arg = c.query ? nullptr : c.nodes.data();
  errno = 0;
  if (path == numamove::backend::userspace) {
    numamove::detail::userspace::relocation_options options;
    options.force = c.force;
    o.rc = numamove::detail::userspace::move_pages(c.pid, n, pages_arg, nodes_arg, status_arg,
                                                   c.flags, options);
  } else {
    o.rc = numamove::move_pages(c.pid, n, pages_arg, nodes_arg, status_arg, c.flags, path);
  }
  o.error = o.rc == -1 ? errno : 0;
  return o;
}

// Documented differences of the userspace path (docs/semantics.md) for a page `v`.
bool documented_difference(const pool& p, void* v, int kernel, int userspace) {
  for (const region& r : p.regions) {
    if (static_cast<char*>(v) < r.data || static_cast<char*>(v) >= r.data + r.pages * p.page)
      continue;
    if (r.kind == 1 || r.kind == 2) return userspace == -EPERM;            // mlocked, MADV_DONTFORK
    if (r.kind == 3) return userspace == -EACCES || userspace == -EINVAL;  // shared memory
    if (r.data == p.regions[3].data) return kernel == -ENOENT;             // PROT_NONE, Linux < 6.x
  }
  return kernel == userspace;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pool& p = the_pool();
  input in{data, size};
  call c;
  const std::uint8_t head = in.next();
  c.query = (head & 1) != 0;
  c.force = (head & 2) != 0;
  switch (head >> 2 & 7) {
    case 0:
      c.flags = 0;
      break;
    case 1:
    case 2:
      c.flags = MPOL_MF_MOVE;
      break;
    case 3:
      c.flags = MPOL_MF_MOVE_ALL;
      break;
    case 4:
      c.flags = MPOL_MF_MOVE | 1;
      break;
    case 5:
      c.flags = 1 << 5;
      break;
    default:
      c.flags = MPOL_MF_MOVE;
      break;
  }
  switch (head >> 5) {
    case 0:
      c.pid = static_cast<int>(::getpid());
      break;
    case 1:
      c.pid = vanished_pid();
      break;
    default:
      c.pid = 0;
      break;
  }
  const std::uint8_t arrays = in.next();
  c.pages_array = arrays % 8 == 0 ? 1 : arrays % 8 == 1 ? 2 : 0;
  c.status_array = arrays / 8 % 8 == 0 ? 1 : arrays / 8 % 8 == 1 ? 2 : 0;
  const std::size_t count = in.next() % 24;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t what = in.next();
    const std::uint8_t where = in.next();
    char* address = nullptr;
    if (what % 16 < p.regions.size()) {
      const region& r = p.regions[what % 16];
      address = r.data + (where % r.pages) * p.page + (where / 16) * 97 % p.page;
    } else if (what % 16 == 8) {
      address =
          reinterpret_cast<char*>(static_cast<std::uintptr_t>(where + 1) * p.page);  // never mapped
    } else {
      address = p.regions[0].data + (where % 8) * p.page;
    }
    c.pages.push_back(address);
    const std::uint8_t node = in.next();
    c.nodes.push_back(node < 200   ? p.home
                      : node < 220 ? -1
                      : node < 240 ? p.max_node + 1
                                   : 1 << 20);
  }

  const outcome kernel = run(c, numamove::backend::kernel);
  p.check_contents();
  const outcome userspace = run(c, numamove::backend::userspace);
  p.check_contents();

  const std::size_t n = c.pages.size();
  if (userspace.rc != 0 && !(userspace.rc == -1 && allowed_errno(userspace.error))) {
    std::fprintf(stderr, "userspace returned %ld errno %d\n", userspace.rc, userspace.error);
    std::abort();
  }
  if (userspace.rc == 0 && c.status_array == 0)
    for (std::size_t i = 0; i < n; ++i)
      if (!allowed_status(userspace.status[i], p.max_node)) {
        std::fprintf(stderr, "userspace status[%zu] = %d\n", i, userspace.status[i]);
        std::abort();
      }
  // Both paths exist here: compare them where the rules cannot differ.
  const bool comparable =
      !c.force && c.status_array == 0 && c.pages_array == 0 &&
      numamove::capabilities::of_this_process().automatic() == numamove::backend::kernel;
  if (comparable) {
    const bool same_call = kernel.rc == userspace.rc && kernel.error == userspace.error;
    if (!same_call && !(kernel.rc > 0 && userspace.rc == 0)) {
      std::fprintf(stderr, "kernel %ld/%d, userspace %ld/%d\n", kernel.rc, kernel.error,
                   userspace.rc, userspace.error);
      std::abort();
    }
    if (kernel.rc == 0 && userspace.rc == 0)
      for (std::size_t i = 0; i < n; ++i)
        if (kernel.status[i] != userspace.status[i] &&
            !documented_difference(p, c.pages[i], kernel.status[i], userspace.status[i])) {
          std::fprintf(stderr, "entry %zu (%p): kernel %d, userspace %d\n", i, c.pages[i],
                       kernel.status[i], userspace.status[i]);
          std::abort();
        }
  }
  return 0;
}
