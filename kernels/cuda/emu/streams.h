// The emulator's streams, events and graphs (the engine behind cuda_emu's runtime.h), and the hook launch.h
// uses to put a kernel on a stream.
//
// A stream is a host thread that runs the closures queued on it in order; work never runs on the caller's
// thread unless the stream is null. The first error of a stream's work is kept (later work on it still runs,
// as kernels after a failed one do on a GPU) and returned by synchronize(). A stream being captured records
// closures into its graph instead of queueing them; launching the graph queues the recorded list as one
// piece of work. Events are marks in a stream's order: waiting on one blocks the waiting stream (or host)
// until the work queued before the mark has run.
// Thread-safe: any thread may queue on any stream; a stream's work runs on its own thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "kernels/common/result.h"

struct CUstream_st;
struct CUevent_st;
struct CUgraphExec_st;

namespace qcoder::cuda::emu {

using work = std::function<result<void>()>;

// Runs `item` on `stream` after what is queued there (now, on this thread, when the stream is null; then its
// result is returned), or records it when the stream is being captured.
result<void> submit(CUstream_st* stream, work item);

CUstream_st* new_stream();
void delete_stream(CUstream_st* stream);  // waits for its work first
result<void> wait_stream(CUstream_st* stream);

CUevent_st* new_event();
void delete_event(CUevent_st* event);
result<void> record(CUevent_st* event, CUstream_st* stream);
result<void> wait_for(CUstream_st* stream, CUevent_st* event);
bool query(CUevent_st* event);  // the last recorded generation has run

result<void> begin_capture(CUstream_st* stream);
result<CUgraphExec_st*> end_capture(CUstream_st* stream);
result<void> launch_graph(CUgraphExec_st* graph, CUstream_st* stream);
void delete_graph(CUgraphExec_st* graph);

// The compute capability the emulated device reports (10 × major + minor; 90 by default), so that tests can
// check what the host code picks for another generation of card, e.g. 75 for Turing.
int emulated_compute_capability();
void set_emulated_compute_capability(int capability);

// Tests of copy/compute ordering: with a delay set, every copy on a stream (not the null stream) first fills
// its destination with 0xff bytes, sleeps for the delay, then copies. Zero (the default) turns it off.
std::chrono::microseconds copy_delay();
void set_copy_delay(std::chrono::microseconds delay);

}  // namespace qcoder::cuda::emu
