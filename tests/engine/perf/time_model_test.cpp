// The time model: the closed form when everything is resident, monotonicity in bandwidth and budget, the
// card table and custom cards.
#include "engine/perf/time_model.h"

#include <gtest/gtest.h>

#include "engine/make_model.h"

namespace qcoder::engine {
namespace {

// A small MoE model with real-looking proportions (the tiny preset: 8 layers, 16 experts, top-4), costed
// from shape-only weights, and a synthetic trace for it.
struct fixture {
  model_config config;
  qwen3_next_weights weights;
  decode_cost cost;
  routing_trace trace;
};

const fixture& tiny() {
  static const fixture f = [] {
    fixture out;
    result<model_config> c = preset_config("tiny");
    EXPECT_TRUE(c);
    out.config = *c;
    out.config.quant.fp8 = true;
    out.weights = shape_only_weights(out.config);
    result<decode_cost> cost = cost_of_decode(out.config, out.weights, 1, 256);
    EXPECT_TRUE(cost) << cost.err().message;
    out.cost = *cost;
    synthetic_trace_options gen;
    gen.layers = static_cast<std::int32_t>(out.cost.moe_layers);
    gen.experts = static_cast<std::int32_t>(out.cost.experts);
    gen.top_k = static_cast<std::int32_t>(out.cost.top_k);
    gen.tokens = 600;
    result<routing_trace> t = make_synthetic_trace(gen);
    EXPECT_TRUE(t);
    out.trace = *t;
    return out;
  }();
  return f;
}

card custom(const std::string& spec) {
  result<card> c = parse_card("custom:" + spec);
  EXPECT_TRUE(c) << (c ? "" : c.err().message);
  return c ? *c : card{};
}

// A budget leaving room for `slots` experts per layer on a GPU card.
std::uint64_t budget_for_slots(const fixture& f, std::int64_t slots) {
  return static_cast<std::uint64_t>(static_cast<double>(f.cost.resident_device_bytes() + f.cost.state_bytes) + 0.5 * 1073741824.0 +
                                    static_cast<double>(slots * f.cost.moe_layers * f.cost.expert_bytes) + 1);
}

TEST(TimeModel, FullResidencyIsTheClosedForm) {
  const fixture& f = tiny();
  card c = custom("bw=1000,pcie=32,vram=100GiB");  // tflops 0: no FLOP bound
  time_model_options o;
  o.graphs = true;
  result<prediction> p = predict(f.cost, c, f.trace, o);
  ASSERT_TRUE(p) << p.err().message;
  ASSERT_TRUE(p->fits);
  EXPECT_TRUE(p->all_resident);
  EXPECT_DOUBLE_EQ(p->hit_rate, 1.0);
  EXPECT_DOUBLE_EQ(p->parts.copy_stall_s, 0.0);
  // Every byte every launch moves at the achieved bandwidth, a graph node per launch and one graph launch.
  const double bytes = static_cast<double>(f.cost.weight_bytes() + f.cost.vector_bytes() + f.cost.routed_bytes() +
                                           f.cost.activation_bytes() + f.cost.state_traffic_bytes());
  const double expected = bytes / (1000e9 * c.bandwidth_efficiency) +
                          static_cast<double>(f.cost.launches.size()) * c.launch_graph_s + c.graph_launch_s;
  EXPECT_NEAR(p->seconds_per_token, expected, expected * 1e-9);
  EXPECT_NEAR(p->tokens_per_s, 1.0 / expected, 1e-6 / expected);
  // Eager launches cost more per kernel.
  o.graphs = false;
  result<prediction> eager = predict(f.cost, c, f.trace, o);
  ASSERT_TRUE(eager);
  EXPECT_NEAR(eager->seconds_per_token - p->seconds_per_token,
              static_cast<double>(f.cost.launches.size()) * (c.launch_eager_s - c.launch_graph_s) - c.graph_launch_s, 1e-12);
  // The ceiling: the weight bytes alone at the full (not achieved) bandwidth.
  EXPECT_NEAR(p->ceiling_tokens_per_s,
              1000e9 / static_cast<double>(f.cost.weight_bytes() + f.cost.vector_bytes() + f.cost.routed_bytes()), 1e-6);
}

TEST(TimeModel, FasterMemoryIsNeverSlower) {
  const fixture& f = tiny();
  time_model_options o;
  o.policy = "lru";
  o.budget_bytes = budget_for_slots(f, 8);
  double last = 0;
  for (const double bw : {100.0, 200.0, 400.0, 800.0, 1600.0}) {
    result<prediction> p = predict(f.cost, custom(fmt::format("bw={},pcie=16,vram=64GiB", bw)), f.trace, o);
    ASSERT_TRUE(p) << p.err().message;
    ASSERT_TRUE(p->fits);
    EXPECT_FALSE(p->all_resident);
    EXPECT_GT(p->tokens_per_s, last) << bw;
    last = p->tokens_per_s;
  }
}

TEST(TimeModel, MoreBudgetIsNeverSlower) {
  const fixture& f = tiny();
  const card c = custom("bw=400,pcie=16,vram=64GiB");
  time_model_options o;
  o.policy = "lru";  // a stack policy: without prefetch more slots never lose a hit
  o.prefetch = false;
  double last = 0, last_hit = 0;
  for (std::int64_t slots = f.cost.top_k; slots <= f.cost.experts; slots += 2) {
    o.budget_bytes = budget_for_slots(f, slots);
    result<prediction> p = predict(f.cost, c, f.trace, o);
    ASSERT_TRUE(p) << p.err().message;
    ASSERT_TRUE(p->fits);
    EXPECT_EQ(p->slots_per_layer, slots);
    EXPECT_GE(p->tokens_per_s, last) << slots;
    EXPECT_GE(p->hit_rate, last_hit) << slots;
    last = p->tokens_per_s;
    last_hit = p->hit_rate;
  }
  EXPECT_DOUBLE_EQ(last_hit, 1.0);
  // Below top-k slots per layer the model does not fit.
  o.budget_bytes = budget_for_slots(f, f.cost.top_k - 1);
  result<prediction> p = predict(f.cost, c, f.trace, o);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->fits);
  o.budget_bytes = 1024;
  p = predict(f.cost, c, f.trace, o);
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->fits);
}

TEST(TimeModel, MissesCostCopiesOverTheLink) {
  const fixture& f = tiny();
  time_model_options o;
  o.policy = "lru";
  o.budget_bytes = budget_for_slots(f, 6);
  result<prediction> slow = predict(f.cost, custom("bw=400,pcie=1,vram=64GiB"), f.trace, o);
  result<prediction> fast = predict(f.cost, custom("bw=400,pcie=64,vram=64GiB"), f.trace, o);
  ASSERT_TRUE(slow && fast);
  EXPECT_GT(slow->parts.copy_stall_s, fast->parts.copy_stall_s);
  EXPECT_GT(slow->misses_per_token, 0.0);
  EXPECT_LT(slow->tokens_per_s, fast->tokens_per_s);
}

// A bounded host tier under the VRAM slots: VRAM misses that miss RAM too pay a disk read (slower with a
// smaller RAM tier or a slower disk), the decode graph is off (as in the engine), and a RAM tier with room
// for fewer than top-k experts per layer does not fit.
TEST(TimeModel, ABoundedHostTierChargesDiskReads) {
  const fixture& f = tiny();
  const card c = custom("bw=400,pcie=32,vram=64GiB");
  time_model_options o;
  o.policy = "lru";
  o.graphs = false;
  o.budget_bytes = budget_for_slots(f, 5);
  result<prediction> all_in_ram = predict(f.cost, c, f.trace, o);
  const auto ram_for = [&](std::int64_t slots) { return static_cast<std::uint64_t>(slots * f.cost.moe_layers * f.cost.expert_bytes); };
  o.host_bytes = ram_for(10);
  result<prediction> ten = predict(f.cost, c, f.trace, o);
  o.host_bytes = ram_for(6);
  result<prediction> six = predict(f.cost, c, f.trace, o);
  o.ssd_gbps = 0.5;
  result<prediction> six_slow_disk = predict(f.cost, c, f.trace, o);
  ASSERT_TRUE(all_in_ram && ten && six && six_slow_disk);
  EXPECT_EQ(ten->host_slots_per_layer, 10);
  EXPECT_DOUBLE_EQ(all_in_ram->disk_fraction, 0.0);
  EXPECT_GT(ten->disk_fraction, 0.0);
  EXPECT_GT(six->disk_fraction, ten->disk_fraction);
  EXPECT_GT(six->disk_bytes_per_token, ten->disk_bytes_per_token);
  EXPECT_LT(ten->tokens_per_s, all_in_ram->tokens_per_s);
  EXPECT_LT(six->tokens_per_s, ten->tokens_per_s);
  EXPECT_LT(six_slow_disk->tokens_per_s, six->tokens_per_s);
  // The graph path asked for: with a bounded host tier the prediction is the eager path's.
  o.prefetch = false;
  o.ssd_gbps = 0;
  o.graphs = true;
  result<prediction> eager = predict(f.cost, c, f.trace, o);
  o.graphs = false;
  result<prediction> asked_eager = predict(f.cost, c, f.trace, o);
  ASSERT_TRUE(eager && asked_eager);
  EXPECT_DOUBLE_EQ(eager->tokens_per_s, asked_eager->tokens_per_s);
  o.host_bytes = ram_for(f.cost.top_k - 1);
  result<prediction> too_small = predict(f.cost, c, f.trace, o);
  ASSERT_TRUE(too_small);
  EXPECT_FALSE(too_small->fits);
  EXPECT_NE(too_small->why_not.find("RAM"), std::string::npos);
}

// The CPU tier: with a CPU faster than the link, misses cost less (eager path); with a slower one it is not
// used and nothing changes.
TEST(TimeModel, TheCpuTierTakesMissesWhenItIsFaster) {
  const fixture& f = tiny();
  const card c = custom("bw=400,pcie=4,vram=64GiB");
  time_model_options o;
  o.policy = "lru";
  o.graphs = false;
  o.budget_bytes = budget_for_slots(f, 5);
  result<prediction> off = predict(f.cost, c, f.trace, o);
  o.cpu_misses = true;
  o.host_gbps = 40;
  result<prediction> fast_cpu = predict(f.cost, c, f.trace, o);
  o.host_gbps = 1;
  result<prediction> slow_cpu = predict(f.cost, c, f.trace, o);
  ASSERT_TRUE(off && fast_cpu && slow_cpu);
  EXPECT_TRUE(fast_cpu->cpu_misses);
  EXPECT_GT(fast_cpu->tokens_per_s, off->tokens_per_s);
  EXPECT_FALSE(slow_cpu->cpu_misses);
  EXPECT_DOUBLE_EQ(slow_cpu->tokens_per_s, off->tokens_per_s);
}

TEST(TimeModel, TheCpuBudgetIsTheExpertCacheAlone) {
  const fixture& f = tiny();
  result<card> cpu = parse_card("cpu");
  ASSERT_TRUE(cpu);
  time_model_options o;
  o.policy = "lru";
  o.budget_bytes = static_cast<std::uint64_t>(7 * f.cost.moe_layers * f.cost.expert_bytes);
  result<prediction> p = predict(f.cost, *cpu, f.trace, o);
  ASSERT_TRUE(p) << p.err().message;
  ASSERT_TRUE(p->fits);
  EXPECT_EQ(p->slots_per_layer, 7);  // nothing taken off for resident weights or a CUDA context
  EXPECT_GT(p->parts.copy_stall_s, 0.0);
  o.budget_bytes = 0;  // no expert cache: every expert in memory
  p = predict(f.cost, *cpu, f.trace, o);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->all_resident);
  EXPECT_DOUBLE_EQ(p->parts.launch_s, 0.0);  // inside the CPU's measured weight rate
}

TEST(TimeModel, CardTable) {
  const std::vector<std::string> names{"rtx3070ti-8g", "rtx4070-12g", "rtx4090-24g", "h100", "h200"};
  ASSERT_EQ(known_cards().size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const card& c = known_cards()[i];
    EXPECT_EQ(c.name, names[i]);
    EXPECT_GT(c.memory_gbps, 0);
    EXPECT_GT(c.link_gbps, 0);
    EXPECT_GT(c.memory_bytes, 0u);
    EXPECT_FALSE(c.source.empty());
    result<card> parsed = parse_card(c.name);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->memory_gbps, c.memory_gbps);
  }
  EXPECT_EQ(known_cards()[0].memory_gbps, 448);
  EXPECT_EQ(known_cards()[0].memory_bytes, 8ull << 30);
  EXPECT_EQ(known_cards()[4].memory_gbps, 4800);
  result<card> cpu = parse_card("cpu");
  ASSERT_TRUE(cpu);
  EXPECT_TRUE(cpu->cpu);
}

TEST(TimeModel, CustomCards) {
  result<card> c = parse_card("custom:bw=448,pcie=31.5,vram=8GiB,name=mine");
  ASSERT_TRUE(c) << c.err().message;
  EXPECT_EQ(c->name, "mine");
  EXPECT_DOUBLE_EQ(c->memory_gbps, 448);
  EXPECT_DOUBLE_EQ(c->link_gbps, 31.5);
  EXPECT_EQ(c->memory_bytes, 8ull << 30);
  result<card> bare = parse_card("custom:bw=1,pcie=1,vram=12");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->memory_bytes, 12ull << 30);
  const auto error_of = [](const std::string& spec) {
    result<card> r = parse_card(spec);
    return r ? std::string() : r.err().message;
  };
  EXPECT_NE(error_of("custom:bw=448").find("all required"), std::string::npos);
  EXPECT_NE(error_of("custom:bw=fast,pcie=1,vram=8").find("bw=fast: not a number"), std::string::npos);
  EXPECT_NE(error_of("custom:bw=448,pcie=31.5,vram=8XB").find("unit must be"), std::string::npos);
  EXPECT_NE(error_of("custom:bw=448GB,pcie=31.5,vram=8").find("without a unit"), std::string::npos);
  EXPECT_NE(error_of("custom:bw=448,pcie=-1,vram=8").find("must be positive"), std::string::npos);
  EXPECT_NE(error_of("custom:bw=448,pcie=31.5,vram=8,speed=9").find("unknown key 'speed'"), std::string::npos);
  EXPECT_NE(error_of("custom:bw").find("expected key=value"), std::string::npos);
  EXPECT_NE(error_of("rtx9090").find("unknown card 'rtx9090'"), std::string::npos);
}

}  // namespace
}  // namespace qcoder::engine
