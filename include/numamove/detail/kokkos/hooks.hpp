// The Kokkos::Impl hooks that make numamove::kokkos::NumaSpace a memory space: its allocation
// record, its access relations with HostSpace, and deep copies. Their shape depends on the
// Kokkos version (docs/kokkos.md). Reached through numamove/kokkos.hpp only.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/kokkos/hooks.hpp is internal: include a public numamove header"
#endif

#include <cstddef>
#include <string>

// The record's member templates are defined in a header Kokkos does not include itself, and
// Kokkos 3.7+ refuses its non-public headers unless this macro is set.
#ifndef KOKKOS_IMPL_PUBLIC_INCLUDE
#define KOKKOS_IMPL_PUBLIC_INCLUDE
#define NUMAMOVE_KOKKOS_SET_PUBLIC_INCLUDE
#endif
#include <impl/Kokkos_SharedAlloc_timpl.hpp>
#ifdef NUMAMOVE_KOKKOS_SET_PUBLIC_INCLUDE
#undef KOKKOS_IMPL_PUBLIC_INCLUDE
#undef NUMAMOVE_KOKKOS_SET_PUBLIC_INCLUDE
#endif

#if KOKKOS_VERSION >= 40300
// Kokkos 4.3+: the common record holds the space and allocates through it; the specialization
// only names it (as KOKKOS_IMPL_SHARED_ALLOCATION_SPECIALIZATION does) and shows the space.
template <>
class Kokkos::Impl::SharedAllocationRecord<numamove::kokkos::NumaSpace, void>
    : public Kokkos::Impl::SharedAllocationRecordCommon<numamove::kokkos::NumaSpace> {
  using SharedAllocationRecordCommon<numamove::kokkos::NumaSpace>::SharedAllocationRecordCommon;

 public:
  const numamove::kokkos::NumaSpace& space() const noexcept { return m_space; }
};
#else
// Kokkos 3.4 to 4.2: each space writes its record over the common one: allocate the header and
// the data together, fill the header, free through the space. From 3.6 the base record also
// takes the label.
template <>
class Kokkos::Impl::SharedAllocationRecord<numamove::kokkos::NumaSpace, void>
    : public Kokkos::Impl::SharedAllocationRecordCommon<numamove::kokkos::NumaSpace> {
  friend class SharedAllocationRecordCommon<numamove::kokkos::NumaSpace>;
  using base_t = SharedAllocationRecordCommon<numamove::kokkos::NumaSpace>;
  using RecordBase = SharedAllocationRecord<void, void>;

#ifdef KOKKOS_ENABLE_DEBUG
  static inline RecordBase s_root_record;
#endif

  const numamove::kokkos::NumaSpace m_space;

 protected:
  ~SharedAllocationRecord() override {
    m_space.deallocate(RecordBase::m_alloc_ptr->m_label, RecordBase::m_alloc_ptr,
                       RecordBase::m_alloc_size,
                       RecordBase::m_alloc_size - sizeof(SharedAllocationHeader));
  }

  SharedAllocationRecord(const numamove::kokkos::NumaSpace& space, const std::string& label,
                         std::size_t size, RecordBase::function_type dealloc = &base_t::deallocate)
      : base_t(
#ifdef KOKKOS_ENABLE_DEBUG
            &s_root_record,
#endif
            static_cast<SharedAllocationHeader*>(
                space.allocate(label.c_str(), sizeof(SharedAllocationHeader) + size, size)),
            sizeof(SharedAllocationHeader) + size, dealloc
#if KOKKOS_VERSION >= 30600
            ,
            label
#endif
            ),
        m_space(space) {
    this->base_t::_fill_host_accessible_header_info(*RecordBase::m_alloc_ptr, label);
  }

  // Kokkos 3.7+ also constructs a record with the execution space of view_alloc(); host memory
  // needs no fence for it.
  template <class ExecutionSpace>
  SharedAllocationRecord(const ExecutionSpace&, const numamove::kokkos::NumaSpace& space,
                         const std::string& label, std::size_t size,
                         RecordBase::function_type dealloc = &base_t::deallocate)
      : SharedAllocationRecord(space, label, size, dealloc) {}

 public:
  static SharedAllocationRecord* allocate(const numamove::kokkos::NumaSpace& space,
                                          const std::string& label, std::size_t size) {
    return new SharedAllocationRecord(space, label, size);
  }

  const numamove::kokkos::NumaSpace& space() const noexcept {
    return m_space;
  }
};
#endif

namespace Kokkos::Impl {

// Host code reads and writes NumaSpace memory, and a HostSpace View may hold a NumaSpace
// allocation (so functions taking HostSpace Views take these too); not the other way round,
// since a NumaSpace View promises numamove's placement.
template <>
struct MemorySpaceAccess<Kokkos::HostSpace, numamove::kokkos::NumaSpace> {
  static constexpr bool assignable = true;
  static constexpr bool accessible = true;
  static constexpr bool deepcopy = true;
};

template <>
struct MemorySpaceAccess<numamove::kokkos::NumaSpace, Kokkos::HostSpace> {
  static constexpr bool assignable = false;
  static constexpr bool accessible = true;
  static constexpr bool deepcopy = true;
};

// Copies between host memories, as HostSpace copies (in parallel on the host execution space).
// Three parameters: Kokkos 3 has three, Kokkos 4 a fourth that defaults.
template <class ExecutionSpace>
struct DeepCopy<numamove::kokkos::NumaSpace, numamove::kokkos::NumaSpace, ExecutionSpace>
    : DeepCopy<Kokkos::HostSpace, Kokkos::HostSpace, ExecutionSpace> {
  using DeepCopy<Kokkos::HostSpace, Kokkos::HostSpace, ExecutionSpace>::DeepCopy;
};

template <class ExecutionSpace>
struct DeepCopy<Kokkos::HostSpace, numamove::kokkos::NumaSpace, ExecutionSpace>
    : DeepCopy<Kokkos::HostSpace, Kokkos::HostSpace, ExecutionSpace> {
  using DeepCopy<Kokkos::HostSpace, Kokkos::HostSpace, ExecutionSpace>::DeepCopy;
};

template <class ExecutionSpace>
struct DeepCopy<numamove::kokkos::NumaSpace, Kokkos::HostSpace, ExecutionSpace>
    : DeepCopy<Kokkos::HostSpace, Kokkos::HostSpace, ExecutionSpace> {
  using DeepCopy<Kokkos::HostSpace, Kokkos::HostSpace, ExecutionSpace>::DeepCopy;
};

}  // namespace Kokkos::Impl
