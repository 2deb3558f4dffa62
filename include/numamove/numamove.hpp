// numamove/numamove.hpp: the whole core API. Opt-in integrations have their own headers.
#pragma once
#include "detail/public_header_begin.hpp"

#include "allocator.hpp"
#include "capabilities.hpp"
#include "flags.hpp"
#include "migrate.hpp"
#include "migrate_async.hpp"
#include "migration_result.hpp"
#include "move_pages.hpp"
#include "placement.hpp"
#include "topology.hpp"
#include "version.hpp"

#include "detail/public_header_end.hpp"
