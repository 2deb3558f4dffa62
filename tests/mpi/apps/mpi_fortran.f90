! An MPI program in Fortran that knows nothing of numamove (see mpi_app.cpp): memory touched
! before MPI_Init, memory allocated after, a shared-memory window that rank 0 writes whole.
! Built twice: plain (for LD_PRELOAD) and linked with libnumamove_mpi_preload.so.
program mpi_fortran
  use mpi
  use iso_c_binding
  implicit none
  interface
    subroutine touch_elsewhere(data, bytes) bind(C, name="numamove_test_touch_elsewhere")
      import :: c_ptr, c_long
      type(c_ptr), value :: data
      integer(c_long), value :: bytes
    end subroutine
    integer(c_int) function check(what, data, bytes) bind(C, name="numamove_test_check")
      import :: c_ptr, c_long, c_int, c_char
      character(kind=c_char) :: what(*)
      type(c_ptr), value :: data
      integer(c_long), value :: bytes
    end function
    subroutine write_window(win) bind(C, name="numamove_test_write_window")
      import :: c_int
      integer(c_int), value :: win
    end subroutine
    integer(c_int) function check_window(win) bind(C, name="numamove_test_check_window")
      import :: c_int
      integer(c_int), value :: win
    end function
    integer(c_int) function summary() bind(C, name="numamove_test_summary")
      import :: c_int
    end function
  end interface
  integer, parameter :: n = 1048576
  real(c_double), allocatable, target :: before(:), after(:)
  integer :: ierr, win, host, failures, status
  integer(kind=MPI_ADDRESS_KIND) :: bytes, base

  allocate(before(n))
  call touch_elsewhere(c_loc(before), int(8 * n, c_long))
  call MPI_Init(ierr)
  allocate(after(n))
  after = 1.0d0
  failures = check("touched before MPI_Init" // c_null_char, c_loc(before), int(8 * n, c_long))
  failures = check("allocated after MPI_Init" // c_null_char, c_loc(after), int(8 * n, c_long))

  call MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, host, ierr)
  bytes = 3 * 4096 + 100
  call MPI_Win_allocate_shared(bytes, 1, MPI_INFO_NULL, host, base, win, ierr)
  call write_window(win)
  failures = check_window(win)
  call MPI_Win_free(win, ierr)
  call MPI_Comm_free(host, ierr)

  status = summary()
  call MPI_Finalize(ierr)
  if (status /= 0) stop 1
end program
