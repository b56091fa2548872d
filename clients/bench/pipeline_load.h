// pipeline_load: shoal-bench's Pipeline mode — streams of Batches, a window of them in flight.
#pragma once

#include <string>

#include "clients/bench/load_state.h"
#include "runtime/task.h"

namespace shoal::bench {

// One Pipeline stream on connection `index`: up to `depth` Batches of `batch` gets (or puts of
// `value`) over `keys` keys in flight, until s->stop; then it closes its side and ends once the
// server has answered. Latency is per Batch; every operation counts in s->ops.
rt::task<> pipeline_loop(shared_state* s, int index, bool is_get, int batch, int depth, int keys,
                         std::string value);

}  // namespace shoal::bench
