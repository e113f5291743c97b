// Allocation and views of per-sequence memory.
#include "engine/memory/sequence_state.h"

#include <algorithm>

namespace qcoder::engine {

sequence_state::sequence_state(const model_config& c, std::int64_t capacity_tokens, std::pmr::memory_resource* memory)
    : capacity_(capacity_tokens), kv_stride_(c.num_key_value_heads * c.head_dim) {
  const std::int64_t conv_dim =
      2 * c.linear_num_key_heads * c.linear_key_head_dim + c.linear_num_value_heads * c.linear_value_head_dim;
  layers_.reserve(static_cast<std::size_t>(c.num_hidden_layers));
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) layers_.emplace_back(memory);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layer_memory& m = layers_[i];
    if (c.layer_types[i] == layer_kind::full_attention) {
      m.keys.assign(static_cast<std::size_t>(capacity_ * kv_stride_), 0.0f);
      m.values.assign(static_cast<std::size_t>(capacity_ * kv_stride_), 0.0f);
    } else {
      m.conv.assign(static_cast<std::size_t>(conv_dim * (c.linear_conv_kernel_dim - 1)), 0.0f);
      m.ssm.assign(static_cast<std::size_t>(c.linear_num_value_heads * c.linear_key_head_dim * c.linear_value_head_dim),
                   0.0f);
    }
  }
}

void sequence_state::reset() {
  length_ = 0;
  for (layer_memory& m : layers_) {
    std::fill(m.conv.begin(), m.conv.end(), 0.0f);
    std::fill(m.ssm.begin(), m.ssm.end(), 0.0f);
  }
}

void sequence_state::save(rollback_point& into) const {
  into.length = length_;
  into.recurrent.clear();
  for (const layer_memory& m : layers_) {
    into.recurrent.insert(into.recurrent.end(), m.conv.begin(), m.conv.end());
    into.recurrent.insert(into.recurrent.end(), m.ssm.begin(), m.ssm.end());
  }
}

void sequence_state::restore(const rollback_point& from) {
  length_ = from.length;
  auto at = from.recurrent.begin();
  for (layer_memory& m : layers_) {
    std::copy_n(at, m.conv.size(), m.conv.begin());
    at += static_cast<std::ptrdiff_t>(m.conv.size());
    std::copy_n(at, m.ssm.size(), m.ssm.begin());
    at += static_cast<std::ptrdiff_t>(m.ssm.size());
  }
}

kv_view sequence_state::kv(std::int64_t layer) {
  layer_memory& m = layers_[static_cast<std::size_t>(layer)];
  return kv_view{m.keys.data(), m.values.data(), kv_stride_};
}

recurrent_view sequence_state::recurrent(std::int64_t layer) {
  layer_memory& m = layers_[static_cast<std::size_t>(layer)];
  return recurrent_view{m.conv.data(), m.ssm.data(), static_cast<std::int64_t>(m.conv.size()),
                        static_cast<std::int64_t>(m.ssm.size())};
}

std::int64_t sequence_state::bytes() const {
  std::int64_t total = 0;
  for (const layer_memory& m : layers_) {
    total += static_cast<std::int64_t>((m.keys.size() + m.values.size() + m.conv.size() + m.ssm.size()) * sizeof(float));
  }
  return total;
}

}  // namespace qcoder::engine
