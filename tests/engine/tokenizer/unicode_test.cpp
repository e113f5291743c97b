#include "engine/tokenizer/unicode.h"

#include <gtest/gtest.h>

namespace qcoder::engine::unicode {
namespace {

TEST(TokenizerUnicode, DecodesWellFormedUtf8) {
  const std::string text = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x9A\x80";  // a é 日 🚀
  decoded_char c = decode_utf8(text, 0);
  EXPECT_TRUE(c.valid);
  EXPECT_EQ(c.code_point, U'a');
  c = decode_utf8(text, 1);
  EXPECT_EQ(c.code_point, U'\u00E9');
  EXPECT_EQ(c.length, 2u);
  c = decode_utf8(text, 3);
  EXPECT_EQ(c.code_point, U'\u65E5');
  EXPECT_EQ(c.length, 3u);
  c = decode_utf8(text, 6);
  EXPECT_EQ(c.code_point, U'\U0001F680');
  EXPECT_EQ(c.length, 4u);
  EXPECT_TRUE(is_valid_utf8(text));
}

TEST(TokenizerUnicode, RejectsIllFormedSequencesOneByteAtATime) {
  for (const std::string bad : {"\x80", "\xC0\xAF", "\xC3", "\xE2\x82", "\xED\xA0\x80" /* surrogate */,
                                "\xF4\x90\x80\x80" /* > U+10FFFF */, "\xF8\x88\x80\x80\x80", "\xFF",
                                "\xE0\x80\xAF" /* overlong */}) {
    const decoded_char c = decode_utf8(bad, 0);
    EXPECT_FALSE(c.valid) << testing::PrintToString(bad);
    EXPECT_EQ(c.length, 1u);
    EXPECT_EQ(c.code_point, static_cast<unsigned char>(bad[0]));
    EXPECT_FALSE(is_valid_utf8(bad));
  }
  EXPECT_EQ(valid_utf8_prefix("ok\xC3\xA9\xFFmore"), 4u);
}

TEST(TokenizerUnicode, ClassesFollowUnicodeCategoriesAndWhiteSpace) {
  EXPECT_EQ(classify(U'a'), class_letter);
  EXPECT_EQ(classify(U'\u00E9'), class_letter);
  EXPECT_EQ(classify(U'\u65E5'), class_letter);        // Lo
  EXPECT_EQ(classify(U'\u02B0'), class_letter);        // Lm
  EXPECT_EQ(classify(U'7'), class_number);
  EXPECT_EQ(classify(U'\u0663'), class_number);        // Arabic-Indic three (Nd)
  EXPECT_EQ(classify(U'\u216B'), class_number);        // Roman numeral twelve (Nl)
  EXPECT_EQ(classify(U'\u2460'), class_number);        // circled one (No)
  EXPECT_EQ(classify(U' '), class_space);
  EXPECT_EQ(classify(U'\t'), class_space);
  EXPECT_EQ(classify(U'\n'), class_space | class_newline);
  EXPECT_EQ(classify(U'\r'), class_space | class_newline);
  EXPECT_EQ(classify(U'\u00A0'), class_space);         // no-break space
  EXPECT_EQ(classify(U'\u0085'), class_space);         // NEXT LINE: White_Space though a control
  EXPECT_EQ(classify(U'\u2028'), class_space);
  EXPECT_EQ(classify(U'\u3000'), class_space);
  EXPECT_EQ(classify(U'\u200B'), 0);                   // zero width space is Cf, not White_Space
  EXPECT_EQ(classify(U'\uFEFF'), 0);
  EXPECT_EQ(classify(U'\u0301'), 0);                   // combining acute (Mn)
  EXPECT_EQ(classify(U'_'), 0);
  EXPECT_EQ(classify_at("\xFF", 0).classes, 0);
}

TEST(TokenizerUnicode, NfcComposesAndLeavesInertTextUntouched) {
  nfc_normalizer nfc;
  const std::string ascii = "plain ascii text";
  EXPECT_EQ(nfc.normalize(ascii).data(), ascii.data());  // no copy
  const std::string cjk = "\xE6\x97\xA5\xE6\x9C\xAC caf\xC3\xA9";
  EXPECT_EQ(nfc.normalize(cjk).data(), cjk.data());
  EXPECT_EQ(nfc.normalize("cafe\xCC\x81 x"), "caf\xC3\xA9 x");                // e + U+0301 -> é
  EXPECT_EQ(nfc.normalize("\xE2\x84\xAB"), "\xC3\x85");                       // ANGSTROM SIGN -> Å
  EXPECT_EQ(nfc.normalize("a\xCC\x81\xCC\xA3"), "\xE1\xBA\xA1\xCC\x81");      // reordered: ạ + U+0301
  EXPECT_EQ(nfc.normalize("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");       // Hangul jamo -> 가
  // Invalid bytes pass through and do not stop normalization around them.
  EXPECT_EQ(nfc.normalize("e\xCC\x81\xFF" "e\xCC\x81"), "\xC3\xA9\xFF\xC3\xA9");
  EXPECT_EQ(nfc.normalize(""), "");
}

TEST(TokenizerUnicode, ReplacesMaximalIllFormedSubparts) {
  std::string out;
  const std::string_view input = "ok \xFF\xFE x \xC3( \xED\xA0\x80 end";
  EXPECT_EQ(append_replacing_invalid(input, out), input.size());
  EXPECT_EQ(out, "ok \xEF\xBF\xBD\xEF\xBF\xBD x \xEF\xBF\xBD( \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end");
  out.clear();
  EXPECT_EQ(append_replacing_invalid("ab\xF0\x9F\x9A", out, /*hold_incomplete=*/true), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  EXPECT_EQ(append_replacing_invalid("ab\xF0\x9F\x9A", out), 5u);
  EXPECT_EQ(out, "ab\xEF\xBF\xBD");
  out.clear();
  append_replacing_invalid("\xF4\x90\x80\x80", out);  // past U+10FFFF: four replacements, as Python does
  EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TokenizerUnicode, AppendUtf8RoundTrips) {
  for (char32_t c : {U'a', U'\u00E9', U'\u65E5', U'\U0001F680', U'\U0010FFFF'}) {
    std::string s;
    append_utf8(c, s);
    const decoded_char d = decode_utf8(s, 0);
    EXPECT_TRUE(d.valid);
    EXPECT_EQ(d.code_point, c);
    EXPECT_EQ(d.length, s.size());
  }
}

}  // namespace
}  // namespace qcoder::engine::unicode
