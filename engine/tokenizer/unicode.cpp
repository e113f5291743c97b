// UTF-8 decoding, character classes via utf8proc, and NFC with an ASCII / "cannot change" fast path.
#include "engine/tokenizer/unicode.h"

#include <utf8proc.h>

namespace qcoder::engine::unicode {
namespace {

// Characters that NFC leaves alone in any context: starters without a canonical decomposition that never
// combine with a preceding character. Only a fast path; anything else goes through utf8proc.
bool nfc_inert(char32_t c) {
  return c < 0x300 ||                     // Latin-1 and Latin Extended (precomposed forms recompose)
         (c >= 0x3400 && c <= 0x9FFF) ||  // CJK Unified Ideographs (+ extension A, Yijing hexagrams)
         (c >= 0xAC00 && c <= 0xD7A3) ||  // Hangul syllables (a following jamo is not inert)
         (c >= 0x1F300 && c <= 0x1FAFF);  // emoji and pictographs
}

constexpr utf8proc_option_t nfc_options = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);

// One step of UTF-8 validation at text[pos]: a whole character, an ill-formed subpart (its length is what
// one U+FFFD replaces), or a valid prefix cut off by the end of the text.
struct utf8_step {
  enum kind_t { complete, ill_formed, truncated } kind;
  std::uint32_t length;
  char32_t code_point;
};

utf8_step step_utf8(std::string_view text, std::size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  const unsigned char b0 = s[pos];
  if (b0 < 0x80) return {utf8_step::complete, 1, b0};
  std::uint32_t length = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return {utf8_step::ill_formed, 1, b0};
  }
  for (std::uint32_t k = 1; k < length; ++k) {
    if (pos + k >= n) return {utf8_step::truncated, k, b0};
    const unsigned char b = s[pos + k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return {utf8_step::ill_formed, k, b0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {utf8_step::complete, length, cp};
}

}  // namespace

decoded_char decode_utf8(std::string_view text, std::size_t pos) {
  const utf8_step step = step_utf8(text, pos);
  if (step.kind != utf8_step::complete) return {static_cast<unsigned char>(text[pos]), 1, false};
  return {step.code_point, step.length, true};
}

std::size_t append_replacing_invalid(std::string_view bytes, std::string& out, bool hold_incomplete) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    std::size_t run = pos;  // copy runs of ASCII and whole characters in one append
    utf8_step step{};
    while (run < bytes.size()) {
      step = step_utf8(bytes, run);
      if (step.kind != utf8_step::complete) break;
      run += step.length;
    }
    out.append(bytes.substr(pos, run - pos));
    pos = run;
    if (pos == bytes.size()) break;
    if (step.kind == utf8_step::truncated && hold_incomplete) return pos;
    out.append(replacement_character);
    pos += step.length;
  }
  return pos;
}

std::size_t valid_utf8_prefix(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const decoded_char c = decode_utf8(text, pos);
    if (!c.valid) return pos;
    pos += c.length;
  }
  return pos;
}

std::uint8_t classify(char32_t c) {
  if (c < 0x80) return detail::ascii_classes[c];
  if (c == 0x85) return class_space;  // NEXT LINE is White_Space but category Cc
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return class_letter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return class_number;
    case UTF8PROC_CATEGORY_ZS:  // White_Space outside ASCII is exactly Zs + Zl + Zp + U+0085
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return class_space;
    default:
      return 0;
  }
}

classified_char classify_non_ascii_at(std::string_view text, std::size_t pos) {
  const auto b = static_cast<unsigned char>(text[pos]);
  const decoded_char c = decode_utf8(text, pos);
  if (!c.valid) return {0, 1, b};
  return {classify(c.code_point), c.length, c.code_point};
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string_view nfc_normalizer::normalize(std::string_view text) {
  // First pass: most text (all ASCII, or only inert characters) needs nothing.
  bool inert = true;
  for (std::size_t i = 0; i < text.size() && inert;) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const decoded_char c = decode_utf8(text, i);
    inert = !c.valid || nfc_inert(c.code_point);  // invalid bytes pass through unchanged
    i += c.length;
  }
  if (inert) return text;

  // Second pass: copy ASCII and invalid bytes, normalize each run of non-ASCII characters together with the
  // ASCII character before it (which they may compose with: e + U+0301). ASCII characters are starters that
  // never compose with what precedes them, so cutting before one does not change the result.
  out_.clear();
  bool prev_ascii = false;
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      std::size_t j = i;
      while (j < text.size() && static_cast<unsigned char>(text[j]) < 0x80) ++j;
      out_.append(text.substr(i, j - i));
      prev_ascii = true;
      i = j;
      continue;
    }
    std::size_t j = i;
    bool run_inert = true;
    while (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80) {
      const decoded_char c = decode_utf8(text, j);
      if (!c.valid) break;
      run_inert = run_inert && nfc_inert(c.code_point);
      j += c.length;
    }
    if (j > i) {
      if (run_inert) {
        out_.append(text.substr(i, j - i));
      } else if (prev_ascii) {
        out_.pop_back();
        normalize_run(text.substr(i - 1, j - i + 1));
      } else {
        normalize_run(text.substr(i, j - i));
      }
    }
    prev_ascii = false;
    if (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80) {
      out_.push_back(text[j]);  // an invalid byte: kept as is, and a boundary of normalization
      ++j;
    }
    i = j;
  }
  return out_;
}

void nfc_normalizer::normalize_run(std::string_view run) {
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(run.data());
  const auto length = static_cast<utf8proc_ssize_t>(run.size());
  utf8proc_ssize_t count = utf8proc_decompose(bytes, length, code_points_.data(),
                                              static_cast<utf8proc_ssize_t>(code_points_.size()), nfc_options);
  // One spare slot: utf8proc_reencode writes a NUL after the UTF-8 it produces.
  if (count >= static_cast<utf8proc_ssize_t>(code_points_.size())) {
    code_points_.resize(static_cast<std::size_t>(count) + 16);
    count = utf8proc_decompose(bytes, length, code_points_.data(),
                               static_cast<utf8proc_ssize_t>(code_points_.size()), nfc_options);
  }
  if (count < 0) {  // cannot happen for valid UTF-8; keep the text rather than lose it
    out_.append(run);
    return;
  }
  // utf8proc_reencode composes in place and writes UTF-8 over the same buffer (4 bytes per code point fit).
  const utf8proc_ssize_t bytes_out = utf8proc_reencode(code_points_.data(), count, nfc_options);
  if (bytes_out < 0) {
    out_.append(run);
    return;
  }
  out_.append(reinterpret_cast<const char*>(code_points_.data()), static_cast<std::size_t>(bytes_out));
}

}  // namespace qcoder::engine::unicode
