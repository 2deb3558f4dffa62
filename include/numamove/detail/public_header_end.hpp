// Closes a public header's extent (public_header_begin.hpp). No include guard, on purpose.
#pragma pop_macro("NUMAMOVE_PUBLIC_INCLUDE")
