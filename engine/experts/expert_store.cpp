// Host-tier expert store: slot pools, loader threads, pread + DONTNEED reads, per-layer statistics.
#include "engine/experts/expert_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

namespace qcoder::engine {
namespace {

constexpr std::uint64_t part_alignment = 64;
// O_DIRECT wants file offset, length and buffer address in multiples of the logical block size; 4096 covers
// the usual 512 and 4096.
constexpr std::uint64_t direct_alignment = 4096;

std::uint64_t align_up(std::uint64_t v, std::uint64_t a = part_alignment) { return (v + a - 1) / a * a; }

}  // namespace

result<std::vector<std::int32_t>> plan_expert_slots(const expert_store_options& options, const std::vector<bool>& sparse,
                                                    std::uint64_t slot_bytes, std::int64_t experts) {
  const auto layers = static_cast<std::int64_t>(sparse.size());
  std::vector<std::int32_t> slots(sparse.size(), 0);
  std::vector<bool> named(sparse.size(), false);
  std::uint64_t named_bytes = 0;
  auto to_slots = [&](std::uint64_t bytes) {
    return static_cast<std::int32_t>(std::clamp<std::uint64_t>(bytes / std::max<std::uint64_t>(1, slot_bytes), 1,
                                                               static_cast<std::uint64_t>(experts)));
  };
  for (const layer_budget& b : options.layer_budgets) {
    if (b.first < 0 || b.first > b.last) {
      return fail(errc::invalid_argument, "expert layer budget: {}-{} is not a range of layers", b.first, b.last);
    }
    for (std::int64_t l = b.first; l <= b.last; ++l) {
      if (l >= layers) {
        return fail(errc::invalid_argument, "expert layer budget: layer {} does not exist (the model has layers 0-{})", l,
                    layers - 1);
      }
      const auto i = static_cast<std::size_t>(l);
      if (!sparse[i]) return fail(errc::invalid_argument, "expert layer budget: layer {} is dense (it has no routed experts)", l);
      if (named[i]) return fail(errc::invalid_argument, "expert layer budget: layer {} is named twice", l);
      named[i] = true;
      named_bytes += b.bytes;
      slots[i] = to_slots(b.bytes);
    }
  }
  if (named_bytes > options.ram_budget) {
    return fail(errc::invalid_argument,
                "expert layer budgets: the named layers take {:.3f} GB, more than the expert cache's {:.3f} GB in all",
                static_cast<double>(named_bytes) / 1e9, static_cast<double>(options.ram_budget) / 1e9);
  }
  std::int64_t rest_layers = 0;
  for (std::size_t i = 0; i < sparse.size(); ++i) rest_layers += sparse[i] && !named[i] ? 1 : 0;
  const std::uint64_t rest_each = (options.ram_budget - named_bytes) / static_cast<std::uint64_t>(std::max<std::int64_t>(1, rest_layers));
  for (std::size_t i = 0; i < sparse.size(); ++i) {
    if (sparse[i] && !named[i]) slots[i] = to_slots(rest_each);
  }
  return slots;
}

std::string describe_slots(std::span<const std::int32_t> slots) {
  std::string out;
  std::size_t i = 0;
  while (i < slots.size()) {
    if (slots[i] == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j + 1 < slots.size() && slots[j + 1] == slots[i]) ++j;
    if (!out.empty()) out += ' ';
    out += i == j ? fmt::format("{}:{}", i, slots[i]) : fmt::format("{}-{}:{}", i, j, slots[i]);
    i = j + 1;
  }
  return out;
}

result<std::unique_ptr<expert_store>> expert_store::create(const checkpoint& ckpt, const model_config& config,
                                                           const qwen3_next_weights& weights,
                                                           const expert_store_options& options) {
  std::unique_ptr<expert_store> store(new expert_store());
  store->options_ = options;
  store->weights_ = &weights;
  store->experts_per_layer_ = config.num_experts;
  const std::int64_t layers = config.num_hidden_layers;
  store->sources_.resize(static_cast<std::size_t>(layers));
  store->pools_.resize(static_cast<std::size_t>(layers));
  store->stats_.resize(static_cast<std::size_t>(layers));

  // The slot layout comes from the first sparse layer; every expert must match it.
  const mlp_weights* model_expert = nullptr;
  std::int64_t sparse_layers = 0;
  for (const layer_weights& l : weights.layers) {
    if (l.sparse && !l.moe.experts.empty()) {
      if (model_expert == nullptr) model_expert = &l.moe.experts.front();
      ++sparse_layers;
    }
  }
  if (model_expert == nullptr) return fail(errc::invalid_argument, "the model has no routed experts to cache");
  const weight_matrix* parts[3] = {&model_expert->gate_proj, &model_expert->up_proj, &model_expert->down_proj};
  // Room for a part of `bytes`: with direct reads, whole blocks from the block before its first byte (the
  // data starts up to 4095 bytes into its room), so every room and slot is a multiple of 4096.
  auto room_for = [direct = options.direct_io](std::uint64_t bytes) {
    return direct ? align_up(bytes + direct_alignment - 1, direct_alignment) : align_up(bytes);
  };
  std::uint64_t offset = 0;
  for (int p = 0; p < 3; ++p) {
    store->part_offset_[static_cast<std::size_t>(p)] = offset;
    offset += room_for(static_cast<std::uint64_t>(parts[p]->rows * parts[p]->cols) * dtype_size(parts[p]->type));
  }
  for (int p = 0; p < 3; ++p) {
    store->part_offset_[static_cast<std::size_t>(3 + p)] = offset;
    if (parts[p]->quantized()) {
      const std::uint64_t scale_bytes = static_cast<std::uint64_t>(
          ((parts[p]->rows + parts[p]->block_rows - 1) / parts[p]->block_rows) * parts[p]->scale_cols()) *
          dtype_size(parts[p]->scale_type);
      offset += room_for(scale_bytes);
    }
  }
  store->slot_bytes_ = offset;

  static constexpr const char* proj_names[3] = {"gate_proj", "up_proj", "down_proj"};
  for (std::int64_t l = 0; l < layers; ++l) {
    if (!weights.layers[static_cast<std::size_t>(l)].sparse) continue;
    auto& layer_sources = store->sources_[static_cast<std::size_t>(l)];
    layer_sources.resize(static_cast<std::size_t>(config.num_experts));
    for (std::int64_t e = 0; e < config.num_experts; ++e) {
      for (int p = 0; p < 3; ++p) {
        const std::string base = fmt::format("model.layers.{}.mlp.experts.{}.{}", l, e, proj_names[p]);
        QCODER_TRY(const tensor_info* w, ckpt.get(base + ".weight"));
        source_tensor& src = layer_sources[static_cast<std::size_t>(e)][static_cast<std::size_t>(p)];
        src.weight = w;
        const std::uint64_t room = store->part_offset_[static_cast<std::size_t>(p + 1)] - store->part_offset_[static_cast<std::size_t>(p)];
        if (w->type != parts[p]->type || w->elements() != parts[p]->rows * parts[p]->cols || room_for(w->bytes.size()) > room) {
          return fail(errc::corrupt_data, "{}: tensor '{}' differs in type or size from the other experts",
                      w->file->string(), w->name);
        }
        if (parts[p]->quantized()) {
          QCODER_TRY(src.scale, ckpt.get(base + ".weight_scale_inv"));
          const std::uint64_t scale_room = (p < 2 ? store->part_offset_[static_cast<std::size_t>(4 + p)] : store->slot_bytes_) -
                                           store->part_offset_[static_cast<std::size_t>(3 + p)];
          if (src.scale->type != parts[p]->scale_type || room_for(src.scale->bytes.size()) > scale_room) {
            return fail(errc::corrupt_data, "{}: tensor '{}' differs in type or size from the other experts",
                        src.scale->file->string(), src.scale->name);
          }
        }
      }
    }
  }

  // Budget → slots per layer.
  std::vector<bool> sparse(static_cast<std::size_t>(layers));
  for (std::int64_t l = 0; l < layers; ++l) sparse[static_cast<std::size_t>(l)] = weights.layers[static_cast<std::size_t>(l)].sparse;
  QCODER_TRY(const std::vector<std::int32_t> plan, plan_expert_slots(options, sparse, store->slot_bytes_, config.num_experts));
  std::uint64_t total_slots = 0;
  for (const std::int32_t n : plan) total_slots += static_cast<std::uint64_t>(n);
  store->arena_bytes_ = store->slot_bytes_ * total_slots;
  store->arena_ = allocate_weight_arena(store->arena_bytes_);
  if (!store->arena_) return fail(errc::io_error, "cannot allocate {} bytes for the expert cache", store->arena_bytes_);
  std::byte* next = store->arena_.get();
  for (std::int64_t l = 0; l < layers; ++l) {
    if (!sparse[static_cast<std::size_t>(l)]) continue;
    layer_pool& pool = store->pools_[static_cast<std::size_t>(l)];
    pool.slots.resize(static_cast<std::size_t>(plan[static_cast<std::size_t>(l)]));
    pool.where.assign(static_cast<std::size_t>(config.num_experts), -1);
    QCODER_TRY(pool.policy, make_cache_policy(options.policy, static_cast<std::int32_t>(config.num_experts)));
    for (slot& s : pool.slots) {
      s.buffer = next;
      s.view = store->view_of(l, next);
      next += store->slot_bytes_;
    }
  }
  for (int i = 0; i < std::max(1, options.loader_threads); ++i) {
    store->loaders_.emplace_back([raw = store.get()] { raw->loader_loop(); });
  }
  spdlog::info("expert cache: {} slots over {} layers x {:.1f} MB = {:.2f} GB ({} policy, prefetch {}, {} reads); slots by "
               "layer {}",
               total_slots, sparse_layers, static_cast<double>(store->slot_bytes_) / 1e6,
               static_cast<double>(store->arena_bytes_) / 1e9, options.policy, options.prefetch ? "on" : "off",
               options.direct_io ? "direct" : "buffered", describe_slots(plan));
  return store;
}

expert_store::~expert_store() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  queued_.notify_all();
  for (std::thread& t : loaders_) t.join();
}

expert_store::file_handle::~file_handle() {
  if (fd >= 0) ::close(fd);
  if (direct_fd >= 0) ::close(direct_fd);
}

std::int32_t expert_store::slots(std::int64_t layer) const {
  return static_cast<std::int32_t>(pools_[static_cast<std::size_t>(layer)].slots.size());
}

std::vector<std::int32_t> expert_store::layer_slots() const {
  std::vector<std::int32_t> out;
  out.reserve(pools_.size());
  for (const layer_pool& pool : pools_) out.push_back(static_cast<std::int32_t>(pool.slots.size()));
  return out;
}

std::uint64_t expert_store::allocated_bytes() const { return arena_bytes_; }

mlp_weights expert_store::view_of(std::int64_t layer, std::byte* buffer) const {
  mlp_weights v = weights_->layers[static_cast<std::size_t>(layer)].moe.experts.front();
  weight_matrix* parts[3] = {&v.gate_proj, &v.up_proj, &v.down_proj};
  for (int p = 0; p < 3; ++p) {
    parts[p]->data = buffer + part_offset_[static_cast<std::size_t>(p)];
    if (parts[p]->quantized()) parts[p]->scales = buffer + part_offset_[static_cast<std::size_t>(3 + p)];
  }
  return v;
}

std::int32_t expert_store::claim_slot(layer_pool& pool, std::int64_t, std::span<const std::int32_t> keep) {
  std::int32_t best_failed = -1;
  thread_local std::vector<std::int32_t> candidates;  // grows once to the slot count
  candidates.clear();
  for (std::size_t i = 0; i < pool.slots.size(); ++i) {
    slot& s = pool.slots[i];
    if (s.state == slot_state::empty) return static_cast<std::int32_t>(i);
    if (s.pins > 0 || s.state == slot_state::loading) continue;
    if (s.state == slot_state::failed) {
      best_failed = static_cast<std::int32_t>(i);
      continue;
    }
    if (std::find(keep.begin(), keep.end(), s.expert) != keep.end()) continue;
    candidates.push_back(s.expert);
  }
  std::int32_t index = best_failed;
  if (index < 0) {
    if (candidates.empty()) return -1;
    const std::int32_t victim = pool.policy->victim(candidates, tick_);
    index = pool.where[static_cast<std::size_t>(victim)];
  }
  slot& s = pool.slots[static_cast<std::size_t>(index)];
  if (s.state == slot_state::ready) pool.policy->on_evict(s.expert);
  pool.where[static_cast<std::size_t>(s.expert)] = -1;
  s.expert = -1;
  s.state = slot_state::empty;
  s.speculative = false;
  s.error.clear();
  return index;
}

void expert_store::start_load(std::int64_t layer, std::int32_t slot_index, std::int32_t expert, bool speculative) {
  layer_pool& pool = pools_[static_cast<std::size_t>(layer)];
  slot& s = pool.slots[static_cast<std::size_t>(slot_index)];
  s.expert = expert;
  s.state = slot_state::loading;
  s.speculative = speculative;
  pool.where[static_cast<std::size_t>(expert)] = slot_index;
  pool.policy->on_insert(expert, tick_);
  // Demand loads go ahead of speculative ones: the compute is waiting for them now.
  if (speculative) {
    queue_.push_back({layer, slot_index});
  } else {
    queue_.push_front({layer, slot_index});
  }
  queued_.notify_one();
}

void expert_store::request(std::int64_t layer, std::span<const std::int32_t> experts, bool speculative) {
  std::lock_guard lock(mutex_);
  layer_pool& pool = pools_[static_cast<std::size_t>(layer)];
  expert_layer_stats& st = stats_[static_cast<std::size_t>(layer)];
  for (std::int32_t e : experts) {
    if (speculative) pool.policy->on_predict(e, tick_);
    const std::int32_t at = pool.where[static_cast<std::size_t>(e)];
    if (at >= 0 && pool.slots[static_cast<std::size_t>(at)].state != slot_state::failed) {
      if (!speculative) ++st.hits;
      continue;
    }
    if (speculative) {
      ++st.prefetches;
    } else {
      ++st.misses;
    }
    const std::int32_t index = claim_slot(pool, layer, experts);
    if (index < 0) continue;  // every slot busy: acquire_ready() loads it when one frees up
    start_load(layer, index, e, speculative);
  }
}

result<void> expert_store::acquire_ready(std::int64_t layer, std::span<const std::int32_t> experts,
                                         std::vector<std::pair<std::size_t, const mlp_weights*>>& out) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  layer_pool& pool = pools_[static_cast<std::size_t>(layer)];
  expert_layer_stats& st = stats_[static_cast<std::size_t>(layer)];
  const std::size_t before = out.size();
  // One pass takes every ready expert; only a pass that took none waits (so none is taken twice).
  for (;;) {
    for (std::size_t i = 0; i < experts.size(); ++i) {
      const std::int32_t expert = experts[i];
      std::int32_t at = pool.where[static_cast<std::size_t>(expert)];
      if (at < 0) {
        at = claim_slot(pool, layer, experts);
        if (at >= 0) start_load(layer, at, expert, false);
        continue;
      }
      slot& s = pool.slots[static_cast<std::size_t>(at)];
      if (s.state == slot_state::failed) {
        for (std::size_t j = before; j < out.size(); ++j) {
          slot& taken = pool.slots[static_cast<std::size_t>(pool.where[static_cast<std::size_t>(experts[out[j].first])])];
          --taken.pins;
        }
        out.resize(before);
        error err{errc::io_error, std::move(s.error)};
        pool.where[static_cast<std::size_t>(expert)] = -1;
        s.expert = -1;
        s.state = slot_state::empty;
        lock.unlock();
        loaded_.notify_all();
        return err;
      }
      if (s.state != slot_state::ready) continue;
      ++s.pins;
      if (s.speculative) {
        ++st.prefetch_used;
        s.speculative = false;
      }
      pool.policy->on_use(expert, tick_);
      out.emplace_back(i, &s.view);
    }
    if (out.size() > before || experts.empty()) break;
    loaded_.wait(lock);
  }
  st.wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ok();
}

void expert_store::release(std::int64_t layer, std::int32_t expert) {
  {
    std::lock_guard lock(mutex_);
    layer_pool& pool = pools_[static_cast<std::size_t>(layer)];
    const std::int32_t at = pool.where[static_cast<std::size_t>(expert)];
    if (at >= 0 && pool.slots[static_cast<std::size_t>(at)].pins > 0) --pool.slots[static_cast<std::size_t>(at)].pins;
  }
  loaded_.notify_all();
}

const mlp_weights* expert_store::acquire_if_ready(std::int64_t layer, std::int32_t expert) {
  std::lock_guard lock(mutex_);
  layer_pool& pool = pools_[static_cast<std::size_t>(layer)];
  const std::int32_t at = pool.where[static_cast<std::size_t>(expert)];
  if (at < 0) return nullptr;
  slot& s = pool.slots[static_cast<std::size_t>(at)];
  if (s.state != slot_state::ready) return nullptr;
  ++s.pins;
  return &s.view;
}

expert_layer_stats& expert_layer_stats::operator+=(const expert_layer_stats& o) {
  hits += o.hits;
  misses += o.misses;
  prefetches += o.prefetches;
  prefetch_used += o.prefetch_used;
  reads += o.reads;
  bytes_read += o.bytes_read;
  wait_seconds += o.wait_seconds;
  return *this;
}

expert_layer_stats operator-(expert_layer_stats a, const expert_layer_stats& b) {
  a.hits -= b.hits;
  a.misses -= b.misses;
  a.prefetches -= b.prefetches;
  a.prefetch_used -= b.prefetch_used;
  a.reads -= b.reads;
  a.bytes_read -= b.bytes_read;
  a.wait_seconds -= b.wait_seconds;
  return a;
}

expert_layer_stats expert_store::totals() const {
  expert_layer_stats t;
  for (const expert_layer_stats& s : stats_) t += s;
  return t;
}

void expert_store::loader_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    queued_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const load_job job = queue_.front();
    queue_.pop_front();
    slot& s = pools_[static_cast<std::size_t>(job.layer)].slots[static_cast<std::size_t>(job.slot)];
    const std::int32_t expert = s.expert;
    lock.unlock();
    // The slot cannot be reused meanwhile (loading slots are never evicted) and nobody reads the view of a
    // loading slot, so the read may point it at where the data landed.
    result<std::uint64_t> read = read_expert(job.layer, expert, s.buffer, s.view);
    lock.lock();
    if (read) {
      s.state = slot_state::ready;
      ++stats_[static_cast<std::size_t>(job.layer)].reads;
      stats_[static_cast<std::size_t>(job.layer)].bytes_read += *read;
    } else {
      s.state = slot_state::failed;
      s.error = read.err().message;
      spdlog::error("expert cache: {}", s.error);
    }
    loaded_.notify_all();
  }
}

result<std::uint64_t> expert_store::read_expert(std::int64_t layer, std::int32_t expert, std::byte* buffer, mlp_weights& view) {
  const auto& parts = sources_[static_cast<std::size_t>(layer)][static_cast<std::size_t>(expert)];
  weight_matrix* matrices[3] = {&view.gate_proj, &view.up_proj, &view.down_proj};
  std::uint64_t bytes = 0;
  for (std::size_t p = 0; p < 3; ++p) {
    const tensor_info* w = parts[p].weight;
    QCODER_TRY(const part_read weight, read_part(*w->file, w->file_offset, w->bytes.size(), buffer + part_offset_[p]));
    matrices[p]->data = weight.data;
    bytes += weight.bytes;
    if (const tensor_info* sc = parts[p].scale) {
      QCODER_TRY(const part_read scale, read_part(*sc->file, sc->file_offset, sc->bytes.size(), buffer + part_offset_[3 + p]));
      matrices[p]->scales = scale.data;
      bytes += scale.bytes;
    }
  }
  return bytes;
}

result<expert_store::part_read> expert_store::read_part(const std::filesystem::path& file, std::uint64_t offset,
                                                         std::size_t size, std::byte* room) {
  // Two attempts: the second reopens the file, so a shard that was replaced (or came back) is read afresh.
  std::string last_error;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<file_handle> handle;
    {
      std::lock_guard lock(files_mutex_);
      auto it = std::find_if(files_.begin(), files_.end(), [&](const open_file& f) { return f.path == file; });
      if (it != files_.end() && attempt > 0) {
        files_.erase(it);  // its descriptors close once no reader holds them
        it = files_.end();
      }
      if (it == files_.end()) {
        const int buffered = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (buffered < 0) {
          last_error = fmt::format("{}: cannot open: {}", file.string(), std::strerror(errno));
          continue;
        }
        // A file system that refuses O_DIRECT (EINVAL) is read through the page cache instead.
        const int direct = options_.direct_io ? ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT) : -1;
        it = files_.insert(files_.end(), open_file{file, std::make_shared<file_handle>(buffered, direct)});
      }
      handle = it->handle;
    }
    const int fd = handle->fd;
    const int direct_fd = handle->direct_refused ? -1 : handle->direct_fd;
    if (direct_fd >= 0) {
      // Whole blocks from the one that holds the first byte, into the room (block-aligned, with the slack).
      const std::uint64_t start = offset / direct_alignment * direct_alignment;
      const std::size_t head = static_cast<std::size_t>(offset - start);
      const std::size_t length = static_cast<std::size_t>(align_up(head + size, direct_alignment));
      std::size_t done = 0;
      errno = 0;
      while (done < length) {
        const ssize_t n = ::pread(direct_fd, room + done, length - done, static_cast<off_t>(start + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
      if (done >= head + size) return part_read{room + head, done};  // the file may end inside the last block
      if (errno == EINVAL) {
        if (!handle->direct_refused.exchange(true)) {
          spdlog::warn("expert cache: {}: direct reads refused, reading through the page cache", file.string());
        }
      } else {
        last_error = fmt::format("{}: read {} of {} bytes at offset {} (file truncated or unreadable: {})", file.string(),
                                 done > head ? done - head : 0, size, offset, errno != 0 ? std::strerror(errno) : "end of file");
        continue;
      }
    }
    std::size_t done = 0;
    errno = 0;
    while (done < size) {
      const ssize_t n = ::pread(fd, room + done, size - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    if (done == size) {
      // The budget is the real cost: do not leave a second copy in the OS page cache.
      ::posix_fadvise(fd, static_cast<off_t>(offset), static_cast<off_t>(size), POSIX_FADV_DONTNEED);
      return part_read{room, size};
    }
    last_error = fmt::format("{}: read {} of {} bytes at offset {} (file truncated or unreadable: {})", file.string(),
                             done, size, offset, errno != 0 ? std::strerror(errno) : "end of file");
  }
  return fail(errc::io_error, "{}", last_error);
}

}  // namespace qcoder::engine
