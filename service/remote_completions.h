// Completions from a remote OpenAI-compatible server (vLLM, SGLang, llama-server, or `qcoder serve`) instead
// of the local model: a raw prompt in, the streamed text out through POST {base}/completions. It retries a
// server that says it is busy (429, 503), cuts the text at stop strings itself, and turns the server's
// answers into errors a person can act on.
//
// Thread-safety: one object may serve several streams at once from different threads, each on its own
// connection; the model name asked of the server is remembered under a mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "http/client.h"
#include "kernels/common/result.h"

namespace qcoder::service {

struct remote_options {
  std::string url;      // the API's base URL, e.g. http://gpu-box:8000/v1; one without a path gets "/v1"
  std::string api_key;  // sent as a Bearer token when not empty
  std::string model;    // empty: the first model GET {base}/models lists (asked once, remembered)
  int max_attempts = 4;                      // tries of a request answered 429 or 503
  std::chrono::milliseconds backoff{500};    // the first wait; doubles each try; a Retry-After replaces it
  std::chrono::milliseconds max_backoff{8000};  // caps both
  http::client_options http;
};

struct remote_request {
  std::string prompt;  // raw text, control tokens spelled out (FIM prompts)
  // Or the prompt as token ids (the OpenAI API's array-of-integers form), sent instead when not empty: the
  // server then sees exactly these tokens, with no second tokenization.
  std::vector<std::int32_t> prompt_ids;
  std::int64_t max_tokens = 128;
  bool greedy = true;  // temperature 0
  float temperature = 0.8f, top_p = 0.95f;  // when not greedy
  std::int32_t top_k = 0;  // when not greedy and > 0 (vLLM's, SGLang's, llama-server's and our extension)
  std::optional<std::uint64_t> seed;
  // Stop strings. The server is given the first max_server_stop_strings (the OpenAI API's limit, which
  // `qcoder serve` enforces); all of them are also cut here, so the text handed out never contains one,
  // nor anything after it.
  std::vector<std::string> stop;
};

inline constexpr std::size_t max_server_stop_strings = 4;

struct remote_result {
  std::string finish_reason;  // the server's ("stop", "length"); "stop" when a stop string was cut here;
                              // "cancelled" when on_text returned false
  std::size_t prompt_tokens = 0, completion_tokens = 0;  // from the stream's usage; 0 when it sent none
  std::int64_t cached_tokens = 0;  // usage.prompt_tokens_details.cached_tokens, when sent
  double first_text_seconds = 0;   // from the call to the first text handed out (0: there was none)
  double seconds = 0;              // the whole call, waits between tries included
  int attempts = 1;
};

class remote_completions {
 public:
  // Parses the URL (errors: invalid_argument); connects to nothing yet.
  static result<std::unique_ptr<remote_completions>> create(remote_options options);

  const http::endpoint& server() const { return server_; }

  // The model name to send: options.model, or the first id GET {base}/models lists, asked on first use and
  // remembered. Errors: unavailable, parse_error, invalid_argument (a rejected key), cancelled.
  result<std::string> model(std::stop_token stop = {});

  // How many tokens a sequence may hold on the server (prompt and output), when its model list says
  // (vLLM's and qcoder's `max_model_len`); nullopt when it does not or cannot be asked now.
  std::optional<std::int64_t> context_tokens(std::stop_token stop = {});

  // Streams one completion: on_text gets each piece of text (never empty) as it comes; returning false ends
  // the stream (the connection closes; finish_reason "cancelled", not an error).
  // Errors: cancelled (the stop token fired), unavailable (unreachable, busy after max_attempts, a 5xx, a
  // stream cut off before "data: [DONE]"), invalid_argument (400/404/413 and other 4xx, 401/403 about the
  // API key), parse_error (a reply that is not the API's JSON), and the error the server put in the stream.
  // No retry once any text was handed out.
  result<remote_result> stream(const remote_request& request, const std::function<bool(std::string_view text)>& on_text,
                               std::stop_token stop = {});

 private:
  remote_completions(remote_options options, http::endpoint server)
      : options_(std::move(options)), server_(std::move(server)) {}

  http::header_list headers() const;
  // GET {base}/models: remembers the first id and each model's context length.
  result<void> ask_models(std::stop_token stop);
  error reply_error(const http::client_reply& reply, int attempts) const;

  const remote_options options_;
  const http::endpoint server_;
  std::mutex model_mutex_;  // guards the three below
  bool models_asked_ = false;
  std::string first_model_;
  std::map<std::string, std::int64_t, std::less<>> context_tokens_;
};

}  // namespace qcoder::service
