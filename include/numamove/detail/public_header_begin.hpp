// Opens a public header's extent: detail headers included from here on are allowed (they refuse
// to be included otherwise). Included at the top of every public header, with
// public_header_end.hpp at its bottom; push/pop keeps nested public headers right. No include
// guard: it is meant to be included again and again.
#pragma push_macro("NUMAMOVE_PUBLIC_INCLUDE")
#undef NUMAMOVE_PUBLIC_INCLUDE
#define NUMAMOVE_PUBLIC_INCLUDE
