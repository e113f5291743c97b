#include "kernels/common/result.h"

#include <gtest/gtest.h>

namespace qcoder {
namespace {

result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return fail(errc::invalid_argument, "'{}' is not a digit", c);
  return c - '0';
}

result<int> sum_digits(std::string_view s) {
  int total = 0;
  for (char c : s) {
    QCODER_TRY(int digit, parse_digit(c));
    total += digit;
  }
  return total;
}

result<void> check_even(int n) {
  if (n % 2 != 0) return fail(errc::corrupt_data, "{} is odd", n);
  return ok();
}

result<int> half_of_even(int n) {
  QCODER_CHECK(check_even(n));
  return n / 2;
}

TEST(Result, CarriesValueOrError) {
  result<int> good = sum_digits("123");
  ASSERT_TRUE(good);
  EXPECT_EQ(*good, 6);

  result<int> bad = sum_digits("1x3");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.err().code, errc::invalid_argument);
  EXPECT_EQ(bad.err().message, "'x' is not a digit");
}

TEST(Result, CheckPropagatesVoidErrors) {
  EXPECT_EQ(*half_of_even(8), 4);
  result<int> odd = half_of_even(7);
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.err().code, errc::corrupt_data);
  EXPECT_EQ(odd.err().message, "7 is odd");
}

TEST(Result, ErrorCodesHaveNames) {
  EXPECT_STREQ(to_string(errc::not_found), "not found");
  EXPECT_STREQ(to_string(errc::cancelled), "cancelled");
}

}  // namespace
}  // namespace qcoder
