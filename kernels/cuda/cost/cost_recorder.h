// The cost kernels (qcoder::cuda_cost): a third build of the CUDA entry points (matmul.h, mixers.h,
// pointwise.h, rms_norm.h, runtime.h) that launches nothing. Each "launch" appends a launch_record to the
// active cost_recorder: the bytes it would move (weights, activations, sequence state) and its FLOPs, from
// the same arguments the real kernel gets. The runtime hands out device addresses that are never
// dereferenced (weights of an 80 GB model cost nothing), counts the bytes allocated (the VRAM the design
// needs), and remembers which host range each device range was copied from, so a launch's weights can be
// traced back to the tensor (and layer) they came from. Managed memory (sequence state, which the host
// writes) is real but aliased: every managed allocation returns the same scratch, large enough for the
// largest request, and only its size is counted.
//
// What a kernel reads of the KV cache depends on how long the sequences are, which the cost kernels cannot
// read from device memory: the recorder's context() says it (every segment is taken to hold that many
// tokens), and the caller sets the states' lengths to match.
//
// Thread-safety: a recorder belongs to one thread; cost_scope makes it the active one for that thread (the
// entry points fail with no active recorder, except release/destroy calls, which do nothing).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "kernels/cuda/types.h"

namespace qcoder::cuda_cost {

// One kernel launch as the cost kernels saw it. Bytes are DRAM traffic if every byte is read once per
// launch: a gemv reads its weight matrix once for all rows of x (x_rows_per_pass rows at a time from
// registers, the weight row re-read from cache), expert_gemv reads one expert per assignment.
struct launch_record {
  std::string_view kernel;             // the entry point's name: "gemv", "attention", ...
  const void* weights = nullptr;       // device address of the weights read (first matrix/vector), or null
  std::int64_t weight_bytes = 0;       // matrices (and embedding rows) read
  cuda::element_type weight_type = cuda::element_type::f32;  // of the matrix (or experts) read
  std::int64_t vector_bytes = 0;       // small weight vectors read (norm weights, conv taps, A_log, ...)
  std::int64_t routed_bytes = 0;       // routed-expert weights read (expert_gemv): assignments × expert_bytes
  std::int64_t routed_assignments = 0; // expert_gemv: (token, expert) pairs
  std::int64_t expert_bytes = 0;       // expert_gemv: bytes of one expert's matrix of this projection
  std::int64_t activation_bytes = 0;   // activations read + written
  std::int64_t state_bytes = 0;        // KV cache, conv and delta-rule state read + written
  double flops = 0;                    // multiply-adds count 2
  std::int64_t layer = -1;             // filled by the caller (see cost_recorder::attribute); -1: outside layers
};

class cost_recorder {
 public:
  explicit cost_recorder(std::int64_t context_tokens = 0) : context_(context_tokens) {}
  cost_recorder(const cost_recorder&) = delete;
  cost_recorder& operator=(const cost_recorder&) = delete;

  // Tokens every segment's sequence is taken to hold before the chunk (the KV rows attention reads).
  std::int64_t context() const { return context_; }
  void set_context(std::int64_t tokens) { context_ = tokens; }

  const std::vector<launch_record>& launches() const { return launches_; }
  void clear_launches() { launches_.clear(); }
  // Bytes handed out by allocate (device memory) and allocate_managed (sequence state), net of releases.
  std::int64_t device_bytes() const { return device_bytes_; }
  std::int64_t managed_bytes() const { return managed_bytes_; }

  // The host address the byte at device address `device` was copied from (by the last copy over it), or
  // null when none was.
  const void* host_source(const void* device) const;

  // --- used by the cost entry points -------------------------------------------------------------------
  void record(const launch_record& r) { launches_.push_back(r); }
  void* allocate(std::size_t bytes);
  void* allocate_managed(std::size_t bytes);
  void release(void* pointer);
  void note_copy(void* destination, const void* source, std::size_t bytes);
  bool is_fake(const void* pointer) const;

 private:
  struct copy_range {
    std::uintptr_t source = 0;
    std::size_t bytes = 0;
  };
  std::int64_t context_ = 0;
  std::vector<launch_record> launches_;
  std::uintptr_t next_fake_ = fake_base;
  std::map<std::uintptr_t, std::size_t> fake_sizes_;     // device allocations: start → bytes
  std::map<std::uintptr_t, copy_range> copies_;          // device start of a copy → where from
  std::map<const void*, std::size_t> managed_sizes_;     // managed allocations (all aliasing scratch)
  std::vector<std::unique_ptr<std::byte[]>> scratch_;    // the real memory behind managed allocations
  std::size_t scratch_size_ = 0;
  std::int64_t device_bytes_ = 0;
  std::int64_t managed_bytes_ = 0;

 public:
  // Fake device addresses start here: far above any user-space mapping on x86-64 Linux (47-bit), so a
  // stray dereference faults instead of reading something.
  static constexpr std::uintptr_t fake_base = std::uintptr_t{1} << 56;
  cost_recorder* previous_ = nullptr;  // the scope that was active before (cost_scope)
};

// Makes `recorder` the active one on this thread for the scope's lifetime (scopes nest).
class cost_scope {
 public:
  explicit cost_scope(cost_recorder& recorder);
  ~cost_scope();
  cost_scope(const cost_scope&) = delete;
  cost_scope& operator=(const cost_scope&) = delete;

 private:
  cost_recorder& recorder_;
};

// The active recorder of this thread, or null.
cost_recorder* active_recorder();

}  // namespace qcoder::cuda_cost
