// API key checks: the constant-time comparison and the Bearer header parser.
#include "http/auth.h"

#include <gtest/gtest.h>

namespace qcoder::http {
namespace {

TEST(ConstantTimeEquals, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_TRUE(constant_time_equals("sk-secret", "sk-secret"));
  EXPECT_FALSE(constant_time_equals("sk-secret", "sk-secreT"));
  EXPECT_FALSE(constant_time_equals("sk-secret", "Sk-secret"));
  EXPECT_FALSE(constant_time_equals("sk-secret", "sk-secret2"));
  EXPECT_FALSE(constant_time_equals("sk-secret", "sk-secre"));
  EXPECT_FALSE(constant_time_equals("", "x"));
  // A longer string that starts with a NUL-padded copy of the shorter one is still different.
  EXPECT_FALSE(constant_time_equals(std::string_view("ab\0", 3), "ab"));
}

request with_authorization(std::string value) {
  request req;
  req.headers.emplace("authorization", std::move(value));
  return req;
}

TEST(BearerToken, ReadsTheTokenOfTheBearerScheme) {
  EXPECT_EQ(bearer_token(with_authorization("Bearer sk-123")), "sk-123");
  EXPECT_EQ(bearer_token(with_authorization("bearer sk-123")), "sk-123");
  EXPECT_EQ(bearer_token(with_authorization("BEARER   sk-123  ")), "sk-123");
  EXPECT_EQ(bearer_token(with_authorization(" Bearer\tsk-123")), "sk-123");
}

TEST(BearerToken, NothingForOtherSchemesOrNoToken) {
  EXPECT_EQ(bearer_token(request{}), std::nullopt);
  EXPECT_EQ(bearer_token(with_authorization("")), std::nullopt);
  EXPECT_EQ(bearer_token(with_authorization("Bearer")), std::nullopt);
  EXPECT_EQ(bearer_token(with_authorization("Bearer    ")), std::nullopt);
  EXPECT_EQ(bearer_token(with_authorization("Bearersk-123")), std::nullopt);
  EXPECT_EQ(bearer_token(with_authorization("Basic dXNlcjpwYXNz")), std::nullopt);
}

}  // namespace
}  // namespace qcoder::http
