// Gap buffer, line index, position mapping and incremental parsing of one document.
#include "context/document.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <tree_sitter/api.h>

namespace qcoder::context {

decoded_char decode_utf8(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return {b0, 1, true};
  const decoded_char bad{0xFFFD, 1, false};
  std::size_t length = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return bad;  // continuation byte, C0/C1 (always overlong), F5..FF
  }
  if (i + length > text.size()) return bad;
  for (std::size_t k = 1; k < length; ++k) {
    const unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) return bad;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return bad;
  return {cp, length, true};
}

document::document(std::string path, std::optional<language> lang, std::string text)
    : path_(std::move(path)), lang_(lang) {
  set_text(std::move(text));
}

document::~document() {
  if (tree_ != nullptr) ts_tree_delete(tree_);
  if (parser_ != nullptr) ts_parser_delete(parser_);
}

document::document(document&& other) noexcept
    : path_(std::move(other.path_)),
      lang_(other.lang_),
      buffer_(std::move(other.buffer_)),
      gap_begin_(other.gap_begin_),
      gap_end_(other.gap_end_),
      line_starts_(std::move(other.line_starts_)),
      parser_(std::exchange(other.parser_, nullptr)),
      tree_(std::exchange(other.tree_, nullptr)),
      tree_stale_(other.tree_stale_),
      parse_count_(other.parse_count_) {
  other.gap_begin_ = other.gap_end_ = 0;
  other.line_starts_ = {0};
}

document& document::operator=(document&& other) noexcept {
  if (this != &other) {
    this->~document();
    new (this) document(std::move(other));
  }
  return *this;
}

document document::from_path(std::string path, std::string text) {
  const std::optional<language> lang = language_from_path(path);
  return document(std::move(path), lang, std::move(text));
}

void document::set_text(std::string text) {
  buffer_.assign(text.begin(), text.end());
  gap_begin_ = gap_end_ = buffer_.size();
  rebuild_line_index();
  if (tree_ != nullptr) ts_tree_delete(tree_);
  tree_ = nullptr;
  tree_stale_ = lang_.has_value();  // parsed lazily on first use
}

// --- gap buffer ---

void document::move_gap(std::size_t offset) {
  if (offset < gap_begin_) {
    const std::size_t n = gap_begin_ - offset;
    std::memmove(buffer_.data() + gap_end_ - n, buffer_.data() + offset, n);
    gap_begin_ -= n;
    gap_end_ -= n;
  } else if (offset > gap_begin_) {
    const std::size_t n = offset - gap_begin_;
    std::memmove(buffer_.data() + gap_begin_, buffer_.data() + gap_end_, n);
    gap_begin_ += n;
    gap_end_ += n;
  }
}

void document::reserve_gap(std::size_t bytes) {
  if (gap_size() >= bytes) return;
  // Grow by at least half the text so a run of inserts costs amortised O(1) per byte.
  const std::size_t grow = std::max(bytes - gap_size(), size() / 2 + 256);
  const std::size_t tail = buffer_.size() - gap_end_;
  buffer_.resize(buffer_.size() + grow);
  std::memmove(buffer_.data() + gap_end_ + grow, buffer_.data() + gap_end_, tail);
  gap_end_ += grow;
}

std::string_view document::chunk_at(std::size_t offset) const {
  if (offset < gap_begin_) return {buffer_.data() + offset, gap_begin_ - offset};
  if (offset >= size()) return {};
  return {buffer_.data() + offset + gap_size(), size() - offset};
}

std::string document::slice(std::size_t begin, std::size_t end) const {
  end = std::min(end, size());
  if (begin >= end) return {};
  std::string out;
  out.reserve(end - begin);
  while (begin < end) {
    const std::string_view chunk = chunk_at(begin);
    const std::size_t n = std::min(chunk.size(), end - begin);
    out.append(chunk.data(), n);
    begin += n;
  }
  return out;
}

// --- line index ---

bool document::is_line_start(std::size_t offset) const {
  if (offset == 0 || offset > size()) return false;
  const char before = byte_at(offset - 1);
  if (before == '\n') return true;
  return before == '\r' && (offset == size() || byte_at(offset) != '\n');
}

void document::rebuild_line_index() {
  line_starts_.assign(1, 0);
  for (std::size_t i = 1; i <= size(); ++i) {
    if (is_line_start(i)) line_starts_.push_back(i);
  }
}

std::size_t document::line_of(std::size_t offset) const {
  return static_cast<std::size_t>(std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) -
                                  line_starts_.begin()) - 1;
}

std::string document::line_text(std::size_t line) const {
  if (line >= line_count()) return {};
  const std::size_t begin = line_starts_[line];
  std::size_t end = line + 1 < line_count() ? line_starts_[line + 1] : size();
  while (end > begin && (byte_at(end - 1) == '\n' || byte_at(end - 1) == '\r')) --end;
  return slice(begin, end);
}

// --- positions ---

result<std::size_t> document::offset_at(text_position pos, column_unit unit) const {
  if (pos.line >= line_count()) {
    return fail(errc::invalid_argument, "{}: line {} is past the last line ({})", path_, pos.line, line_count() - 1);
  }
  const std::string line = line_text(pos.line);
  std::size_t units = 0;
  std::size_t i = 0;
  while (units < pos.column && i < line.size()) {
    const decoded_char c = decode_utf8(line, i);
    const std::size_t width = unit == column_unit::utf8 ? c.length : (c.code_point >= 0x10000 ? 2 : 1);
    if (units + width > pos.column) {
      return fail(errc::invalid_argument, "{}:{}: column {} is inside a character", path_, pos.line, pos.column);
    }
    units += width;
    i += c.length;
  }
  if (units < pos.column) {
    return fail(errc::invalid_argument, "{}:{}: column {} is past the end of the line ({} {})", path_, pos.line,
                pos.column, units, unit == column_unit::utf8 ? "bytes" : "UTF-16 units");
  }
  return line_starts_[pos.line] + i;
}

result<text_position> document::position_at(std::size_t offset, column_unit unit) const {
  if (offset > size()) return fail(errc::invalid_argument, "{}: offset {} is past the end ({})", path_, offset, size());
  const std::size_t line = line_of(offset);
  const std::size_t relative = offset - line_starts_[line];
  const std::string text = line_text(line);
  if (relative > text.size()) {
    return fail(errc::invalid_argument, "{}: offset {} is inside a line terminator", path_, offset);
  }
  std::size_t units = 0;
  std::size_t i = 0;
  while (i < relative) {
    const decoded_char c = decode_utf8(text, i);
    units += unit == column_unit::utf8 ? c.length : (c.code_point >= 0x10000 ? 2 : 1);
    i += c.length;
  }
  if (i != relative) return fail(errc::invalid_argument, "{}: offset {} is inside a character", path_, offset);
  return text_position{line, units};
}

// --- edits ---

result<void> document::replace(std::size_t begin, std::size_t end, std::string_view text) {
  if (begin > end || end > size()) {
    return fail(errc::invalid_argument, "{}: edit range [{}, {}) is not within the document ({} bytes)", path_, begin,
                end, size());
  }
  TSInputEdit edit{};
  const bool track_tree = tree_ != nullptr;
  if (track_tree) {
    const auto point = [&](std::size_t offset) {
      const std::size_t line = line_of(offset);
      return TSPoint{static_cast<uint32_t>(line), static_cast<uint32_t>(offset - line_starts_[line])};
    };
    edit.start_byte = static_cast<uint32_t>(begin);
    edit.old_end_byte = static_cast<uint32_t>(end);
    edit.new_end_byte = static_cast<uint32_t>(begin + text.size());
    edit.start_point = point(begin);
    edit.old_end_point = point(end);
  }

  // Bytes: delete [begin, end) by widening the gap, then insert at its start.
  move_gap(begin);
  gap_end_ += end - begin;
  reserve_gap(text.size());
  std::memcpy(buffer_.data() + gap_begin_, text.data(), text.size());
  gap_begin_ += text.size();

  // Lines: starts before `begin` keep their place; starts after the old `end` shift; starts that depend on a
  // replaced byte (offsets begin .. end, since "\r" + "\n" depends on the byte after) are recomputed.
  const std::ptrdiff_t delta = static_cast<std::ptrdiff_t>(text.size()) - static_cast<std::ptrdiff_t>(end - begin);
  // Line 0 starts at offset 0 whatever the edit: it is never recomputed.
  auto first = std::lower_bound(line_starts_.begin(), line_starts_.end(), std::max<std::size_t>(begin, 1));
  auto last = std::upper_bound(first, line_starts_.end(), end);
  for (auto it = last; it != line_starts_.end(); ++it) *it = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(*it) + delta);
  std::vector<std::size_t> fresh;
  for (std::size_t i = std::max<std::size_t>(begin, 1); i <= begin + text.size(); ++i) {
    if (is_line_start(i)) fresh.push_back(i);
  }
  const std::size_t at = static_cast<std::size_t>(first - line_starts_.begin());
  line_starts_.erase(first, last);
  line_starts_.insert(line_starts_.begin() + static_cast<std::ptrdiff_t>(at), fresh.begin(), fresh.end());

  if (track_tree) {
    const std::size_t new_end = begin + text.size();
    const std::size_t line = line_of(new_end);
    edit.new_end_point = TSPoint{static_cast<uint32_t>(line), static_cast<uint32_t>(new_end - line_starts_[line])};
    ts_tree_edit(tree_, &edit);
  }
  if (lang_) tree_stale_ = true;
  return ok();
}

result<void> document::replace(text_position begin, text_position end, column_unit unit, std::string_view text) {
  QCODER_TRY(const std::size_t from, offset_at(begin, unit));
  QCODER_TRY(const std::size_t to, offset_at(end, unit));
  if (to < from) {
    return fail(errc::invalid_argument, "{}: edit range ends ({}:{}) before it starts ({}:{})", path_, end.line,
                end.column, begin.line, begin.column);
  }
  return replace(from, to, text);
}

// --- parsing ---

void document::reparse() {
  tree_stale_ = false;
  if (!lang_ || size() > max_parse_bytes) {
    if (tree_ != nullptr) ts_tree_delete(tree_);
    tree_ = nullptr;
    return;
  }
  if (parser_ == nullptr) {
    parser_ = ts_parser_new();
    ts_parser_set_language(parser_, grammar(*lang_));
  }
  TSInput input{};
  input.payload = this;
  input.encoding = TSInputEncodingUTF8;
  input.read = [](void* payload, uint32_t byte, TSPoint, uint32_t* bytes_read) -> const char* {
    const std::string_view chunk = static_cast<const document*>(payload)->chunk_at(byte);
    *bytes_read = static_cast<uint32_t>(chunk.size());
    return chunk.data();
  };
  TSTree* fresh = ts_parser_parse(parser_, tree_, input);
  ++parse_count_;
  if (tree_ != nullptr) ts_tree_delete(tree_);
  tree_ = fresh;  // null only if parsing was cancelled, which we never ask for
}

const TSTree* document::tree() {
  if (tree_stale_) reparse();
  return tree_;
}

source_view document::view() {
  const TSTree* current = tree();
  move_gap(size());
  return source_view{path_, lang_, std::string_view(buffer_.data(), size()), current};
}

}  // namespace qcoder::context
