// numamove/kokkos.hpp: a Kokkos memory space whose Views are placed before first touch, moved
// and located. Opt-in: link numamove::kokkos (the core stays free of Kokkos). Kokkos 3.4 or
// newer; docs/kokkos.md tells the whole story.
//
//   NumaSpace                  the memory space: a numamove::placement, or (Kokkos 4 with
//                              OpenMP) NumaSpace::for_range(policy), the pages of each
//                              thread of that RangePolicy's loop on the thread's node
//   space_of                   the NumaSpace a View's allocation was made in
//   migrate, locate, bytes_per_node   numamove's calls on any host-accessible View
//   create_mirror, resize, realloc, kokkos_malloc   Kokkos' calls that keep the placement
//   allocation_failure         what NumaSpace allocations throw (kokkos/allocation_failure.hpp)
#pragma once
#include "detail/public_header_begin.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "kokkos/allocation_failure.hpp"
#include "migrate.hpp"
#include "migration_result.hpp"
#include "placement.hpp"

#if !defined(KOKKOS_VERSION) || KOKKOS_VERSION < 30400
#error "numamove/kokkos.hpp needs Kokkos 3.4 or newer"
#endif

// The placement for a RangePolicy's threads needs the OpenMP backend as Kokkos 4 runs it (a
// native `omp parallel for`, whose iteration-to-thread map is OpenMP's static schedule).
#if defined(KOKKOS_ENABLE_OPENMP) && KOKKOS_VERSION >= 40000 && \
    !defined(KOKKOS_INTERNAL_DISABLE_NATIVE_OPENMP)
#define NUMAMOVE_KOKKOS_THREAD_PLACEMENT 1
#endif

#include "detail/kokkos/allocation.hpp"
#include "detail/kokkos/view_pages.hpp"

namespace numamove::kokkos {

/// A Kokkos memory space of host memory placed by numamove: every page of an allocation is
/// bound to the space's placement (mbind, or first touch from pinned threads where mbind is
/// refused) before Kokkos writes anything, its own initialization included. Views name it as
/// their memory space and get the instance through view_alloc():
///
///     using numamove::kokkos::NumaSpace;
///     Kokkos::View<double**, Kokkos::LayoutRight, NumaSpace>
///         a(Kokkos::view_alloc(NumaSpace(numamove::placement::on_node(1)), "a"), n, m);
///
/// Host execution spaces run on its Views, deep_copy() copies to and from HostSpace, and a
/// HostSpace View may hold a NumaSpace allocation. Kokkos' create_mirror, resize, realloc and
/// kokkos_malloc allocate with a default-constructed space, which places by first touch: use
/// this namespace's functions of the same names to keep the placement. Instances are cheap to
/// copy (one shared, immutable state) and compare equal when they place alike.
class NumaSpace {
 public:
  using memory_space = NumaSpace;
  using execution_space = Kokkos::DefaultHostExecutionSpace;
  using size_type = std::size_t;
  using device_type = Kokkos::Device<execution_space, memory_space>;

  /// First touch: the kernel's default policy, as HostSpace places.
  NumaSpace() = default;

  /// Places every allocation as `where` says. Throws std::system_error with ENODEV when a
  /// node of `where` does not exist or has no memory, EACCES when it is outside this thread's
  /// cpuset, and EINVAL for an interleave over no nodes.
  explicit NumaSpace(placement where) {
    detail::kokkos::validate(where);
    if (where.kind == placement::policy::first_touch) return;
    detail::kokkos::space_state state;
    state.where = std::move(where);
    state_ = std::make_shared<const detail::kokkos::space_state>(std::move(state));
  }

#ifdef NUMAMOVE_KOKKOS_THREAD_PLACEMENT
  /// Which of Kokkos' OpenMP loops a for_range() space is placed for: with the same
  /// RangePolicy, parallel_for runs OpenMP's static schedule (with the policy's chunk size,
  /// except under GCC, where Kokkos drops it) and parallel_reduce Kokkos' own partition (each
  /// thread one block of whole chunks), so an iteration may run on another thread in each.
  enum class loop { parallel_for, parallel_reduce };

  /// A space whose allocations are placed for `policy`, a static-schedule RangePolicy of the
  /// OpenMP execution space, run by `kind` of loop: each allocation's data is split into
  /// policy.end() - policy.begin() equal slices, iteration i works on slice i - policy.begin(),
  /// and each thread of the policy's instance first touches (and, if they are elsewhere, moves)
  /// the pages of its iterations, as numamove::openmp::place_for_schedule() does, before Kokkos
  /// initializes the View. A View whose leading extent is the policy's length (LayoutRight, or
  /// rank 1) is then local to the threads of every such loop over that policy, whatever Kokkos
  /// initializes it with. Allocate from the initial thread (not inside a parallel region); a
  /// thread on a node without memory leaves its pages to first touch. Allocation throws what
  /// place_for_schedule() throws: std::runtime_error when OpenMP gives another team size than
  /// the instance's concurrency, std::system_error when a thread's affinity cannot be read.
  template <class... Traits>
  static NumaSpace for_range(const Kokkos::RangePolicy<Traits...>& policy,
                             loop kind = loop::parallel_for) {
    using range = Kokkos::RangePolicy<Traits...>;
    static_assert(std::is_same_v<typename range::execution_space, Kokkos::OpenMP>,
                  "NumaSpace::for_range: a RangePolicy of Kokkos::OpenMP");
    static_assert(!std::is_same_v<typename range::schedule_type::type, Kokkos::Dynamic>,
                  "NumaSpace::for_range: a dynamic schedule gives iterations to no fixed thread");
    NumaSpace space;
    if (policy.end() <= policy.begin()) return space;
    numamove::openmp::static_schedule schedule;
    schedule.iterations = static_cast<std::size_t>(policy.end() - policy.begin());
    schedule.threads = policy.space().concurrency();
    const auto chunk = static_cast<std::size_t>(policy.chunk_size());
    if (kind == loop::parallel_reduce) {
      // HostThreadTeamData::set_work_partition: whole chunks, ceil(chunks / threads) per thread.
      const std::size_t limit = static_cast<std::size_t>(std::numeric_limits<int>::max());
      const std::size_t work_chunk = std::max(chunk, (schedule.iterations + limit) / limit);
      const std::size_t chunks = (schedule.iterations + work_chunk - 1) / work_chunk;
      const auto threads = static_cast<std::size_t>(schedule.threads);
      schedule.chunk = (chunks + threads - 1) / threads * work_chunk;
    } else {
#ifndef KOKKOS_COMPILER_GNU
      schedule.chunk = chunk;
#endif
    }
    detail::kokkos::space_state state;
    state.schedule = schedule;
    space.state_ = std::make_shared<const detail::kokkos::space_state>(std::move(state));
    return space;
  }

  /// The static schedule for_range() made this space for, or nullptr for a space that places
  /// by a placement.
  const numamove::openmp::static_schedule* schedule() const noexcept {
    return state_ && state_->schedule ? &*state_->schedule : nullptr;
  }
#endif

  /// The placement of this space's allocations; first_touch for a space made by for_range().
  const placement& where() const noexcept {
    static const placement first_touch;
    return state_ ? state_->where : first_touch;
  }

  /// `bytes` of fresh, placed memory, page-aligned. Throws allocation_failure (a
  /// std::bad_alloc), or for a for_range() space what that says. Kokkos Tools see the
  /// allocation (allocateData) under this space's name.
  void* allocate(std::size_t bytes) const {
    return allocate("[unlabeled]", bytes);
  }

  /// The same, under `label`, for Kokkos: `logical` of the bytes are data, after a header.
  void* allocate(const char* label, std::size_t bytes, std::size_t logical = 0) const {
    void* memory = detail::kokkos::allocate(state_.get(), label, bytes, logical);
    if (Kokkos::Tools::profileLibraryLoaded())
      Kokkos::Tools::allocateData(Kokkos::Tools::make_space_handle(name()), label, memory,
                                  logical != 0 ? logical : bytes);
    return memory;
  }

  /// Kokkos 4 allocates with an execution space instance; host memory needs none.
  template <class ExecutionSpace,
            class = std::enable_if_t<Kokkos::is_execution_space<ExecutionSpace>::value>>
  void* allocate(const ExecutionSpace&, std::size_t bytes) const {
    return allocate(bytes);
  }
  template <class ExecutionSpace,
            class = std::enable_if_t<Kokkos::is_execution_space<ExecutionSpace>::value>>
  void* allocate(const ExecutionSpace&, const char* label, std::size_t bytes,
                 std::size_t logical = 0) const {
    return allocate(label, bytes, logical);
  }

  /// Frees memory from allocate() with the same sizes, after a global fence (work still
  /// running on it finishes first, as HostSpace does).
  void deallocate(void* memory, std::size_t bytes) const {
    deallocate("[unlabeled]", memory, bytes);
  }
  void deallocate(const char* label, void* memory, std::size_t bytes,
                  std::size_t logical = 0) const {
    if (memory == nullptr) return;
    Kokkos::fence();
    if (Kokkos::Tools::profileLibraryLoaded())
      Kokkos::Tools::deallocateData(Kokkos::Tools::make_space_handle(name()), label, memory,
                                    logical != 0 ? logical : bytes);
    detail::kokkos::deallocate(state_.get(), memory, bytes, logical);
  }

  /// The name Kokkos Tools and Kokkos' messages show.
  static constexpr const char* name() {
    return "NumaSpace";
  }

  friend bool operator==(const NumaSpace& a, const NumaSpace& b) {
    if (a.state_ == b.state_) return true;
    if (!a.state_ || !b.state_) return false;
    return *a.state_ == *b.state_;
  }
  friend bool operator!=(const NumaSpace& a, const NumaSpace& b) {
    return !(a == b);
  }

 private:
  std::shared_ptr<const detail::kokkos::space_state> state_;  // null: first touch
};

}  // namespace numamove::kokkos

#include "detail/kokkos/hooks.hpp"

namespace numamove::kokkos {

/// The space the allocation behind `view` was made in, subviews and HostSpace Views of a
/// NumaSpace allocation included; std::nullopt for an unmanaged View or memory from another
/// space.
template <class View>
std::optional<NumaSpace> space_of(const View& view) {
  using record = Kokkos::Impl::SharedAllocationRecord<NumaSpace, void>;
  const auto* numa = dynamic_cast<const record*>(view.impl_track().template get_record<void>());
  if (numa == nullptr) return std::nullopt;
  return numa->space();
}

/// Moves the pages holding the elements of `view` (a subview's pages only: a strided View's
/// pages without any of its elements stay) to `node`, as numamove::migrate() moves data: same
/// addresses and contents, pages already there skipped, never-touched pages left so. Every
/// page moves whole, with whatever else it holds (for a NumaSpace allocation, the 128 bytes of
/// Kokkos' header before the data). Call it while no kernel runs on the View. For any View
/// host code can access; the space of the allocation stays as it was (a later resize() places
/// as the space says). Never throws for a failed move: call-level errors go to result.error
/// and per-page outcomes to result.status (one per page holding elements, in address order),
/// as migrate() reports them; std::bad_alloc only for its bookkeeping.
template <class View>
migration_result migrate(const View& view, int node, const migrate_options& options = {}) {
  static_assert(
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible,
      "numamove::kokkos::migrate: a View host code can access");
  if (view.span_is_contiguous()) return numamove::migrate(view.data(), view.span(), node, options);
  std::vector<void*> pages = detail::kokkos::pages_of(view);
  const std::vector<int> target(pages.size(), node);
  return detail::migrate_pages(std::move(pages), target, options);
}

/// Where each page holding elements of `view` is, in address order: the node, or a negative
/// errno as numamove::locate() reports it (-ENOENT never touched). One batched query. Throws
/// std::system_error with the query's errno when the query itself fails.
template <class View>
std::vector<int> locate(const View& view) {
  static_assert(
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible,
      "numamove::kokkos::locate: a View host code can access");
  if (view.span_is_contiguous()) return numamove::locate(view.data(), view.span());
  std::vector<void*> pages = detail::kokkos::pages_of(view);
  std::vector<int> status(pages.size());
  if (numamove::move_pages(0, pages.size(), pages.data(), nullptr, status.data(), 0) != 0)
    throw std::system_error(errno, std::generic_category(), "numamove::kokkos::locate");
  return status;
}

/// Bytes of the elements of `view` on each node (keys: nodes, or the negative status of
/// bytes on none, -ENOENT never touched), from one locate(). Only the elements' bytes count.
/// Throws as locate() does.
template <class View>
std::map<int, std::size_t> bytes_per_node(const View& view) {
  static_assert(
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible,
      "numamove::kokkos::bytes_per_node: a View host code can access");
  if (view.span_is_contiguous()) return numamove::bytes_per_node(view.data(), view.span());
  const std::vector<void*> pages = detail::kokkos::pages_of(view);
  const std::vector<int> status = locate(view);
  const std::uintptr_t page = detail::page_size();
  std::map<int, std::size_t> bytes;
  detail::kokkos::for_each_run(view, [&](std::uintptr_t first, std::size_t length) {
    for (std::uintptr_t at = first; at < first + length;) {
      const std::uintptr_t next = std::min(at / page * page + page, first + length);
      const auto where =
          std::lower_bound(pages.begin(), pages.end(), reinterpret_cast<void*>(at / page * page));
      bytes[status[static_cast<std::size_t>(where - pages.begin())]] += next - at;
      at = next;
    }
  });
  return bytes;
}

}  // namespace numamove::kokkos

#include "detail/kokkos/views.hpp"
#include "detail/linux/syscalls.hpp"

namespace numamove::kokkos {

/// Kokkos::create_mirror(src) for a View in NumaSpace, allocated in the space of src's
/// allocation (a default NumaSpace for an unmanaged src), labelled src.label() + "_mirror",
/// initialized. Kokkos' own create_mirror gives a default-constructed space: first touch.
template <class T, class... P>
typename Kokkos::View<T, P...>::HostMirror create_mirror(const Kokkos::View<T, P...>& src) {
  using mirror = typename Kokkos::View<T, P...>::HostMirror;
  return mirror(Kokkos::view_alloc(detail::kokkos::space_or_default(src),
                                   std::string(src.label()) + "_mirror"),
                src.layout());
}

/// The same, without initializing the mirror's elements (their pages are placed all the same).
template <class T, class... P>
typename Kokkos::View<T, P...>::HostMirror create_mirror(
    Kokkos::Impl::WithoutInitializing_t without, const Kokkos::View<T, P...>& src) {
  using mirror = typename Kokkos::View<T, P...>::HostMirror;
  return mirror(Kokkos::view_alloc(detail::kokkos::space_or_default(src),
                                   std::string(src.label()) + "_mirror", without),
                src.layout());
}

/// Kokkos::resize(view, n0, ...) for a managed View in NumaSpace (LayoutLeft or LayoutRight):
/// a new allocation in the space of view's allocation, the common elements copied, the new
/// ones value-initialized, the label kept. Kokkos' own resize allocates with a
/// default-constructed space. Throws what allocating the View throws; `view` is unchanged
/// then.
template <class T, class... P>
void resize(Kokkos::View<T, P...>& view, std::size_t n0 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
            std::size_t n1 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
            std::size_t n2 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
            std::size_t n3 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
            std::size_t n4 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
            std::size_t n5 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
            std::size_t n6 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
            std::size_t n7 = KOKKOS_IMPL_CTOR_DEFAULT_ARG) {
  detail::kokkos::resize(view, {n0, n1, n2, n3, n4, n5, n6, n7});
}

/// The same, leaving the new elements uninitialized.
template <class T, class... P>
void resize(
    Kokkos::Impl::WithoutInitializing_t without, Kokkos::View<T, P...>& view,
    std::size_t n0 = KOKKOS_IMPL_CTOR_DEFAULT_ARG, std::size_t n1 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
    std::size_t n2 = KOKKOS_IMPL_CTOR_DEFAULT_ARG, std::size_t n3 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
    std::size_t n4 = KOKKOS_IMPL_CTOR_DEFAULT_ARG, std::size_t n5 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
    std::size_t n6 = KOKKOS_IMPL_CTOR_DEFAULT_ARG, std::size_t n7 = KOKKOS_IMPL_CTOR_DEFAULT_ARG) {
  detail::kokkos::resize(view, {n0, n1, n2, n3, n4, n5, n6, n7}, without);
}

/// Kokkos::realloc(view, n0, ...) for a managed View in NumaSpace: the old allocation is freed
/// first, then a new one made in the same space with the same label, initialized; no element
/// is copied. Kokkos' own realloc allocates with a default-constructed space. Throws what
/// allocating the View throws; `view` is empty then.
template <class T, class... P>
void realloc(Kokkos::View<T, P...>& view, std::size_t n0 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
             std::size_t n1 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
             std::size_t n2 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
             std::size_t n3 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
             std::size_t n4 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
             std::size_t n5 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
             std::size_t n6 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
             std::size_t n7 = KOKKOS_IMPL_CTOR_DEFAULT_ARG) {
  detail::kokkos::realloc(view, {n0, n1, n2, n3, n4, n5, n6, n7});
}

/// The same, without initializing the elements.
template <class T, class... P>
void realloc(
    Kokkos::Impl::WithoutInitializing_t without, Kokkos::View<T, P...>& view,
    std::size_t n0 = KOKKOS_IMPL_CTOR_DEFAULT_ARG, std::size_t n1 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
    std::size_t n2 = KOKKOS_IMPL_CTOR_DEFAULT_ARG, std::size_t n3 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
    std::size_t n4 = KOKKOS_IMPL_CTOR_DEFAULT_ARG, std::size_t n5 = KOKKOS_IMPL_CTOR_DEFAULT_ARG,
    std::size_t n6 = KOKKOS_IMPL_CTOR_DEFAULT_ARG, std::size_t n7 = KOKKOS_IMPL_CTOR_DEFAULT_ARG) {
  detail::kokkos::realloc(view, {n0, n1, n2, n3, n4, n5, n6, n7}, without);
}

/// Kokkos::kokkos_malloc<NumaSpace>(label, bytes) in `space` (Kokkos' own uses a
/// default-constructed space): tracked memory that Kokkos::kokkos_free<NumaSpace> frees and
/// Kokkos::kokkos_realloc<NumaSpace> grows in the same space. nullptr for 0 bytes. Throws
/// allocation_failure.
inline void* kokkos_malloc(const NumaSpace& space, const std::string& label, std::size_t bytes) {
  return Kokkos::Impl::SharedAllocationRecord<NumaSpace, void>::allocate_tracked(space, label,
                                                                                 bytes);
}

}  // namespace numamove::kokkos

#include "detail/public_header_end.hpp"
