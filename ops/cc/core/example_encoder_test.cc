// Unit tests for the plain C++ Example encoder; built and run by `make test`.
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "example_encoder.h"
#include "test_harness.h"

namespace pretrain_records {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// Expected bytes worked out by hand from the wire format (and checked against protobuf).
void TestKnownExample() {
  const std::vector<int32_t> a = {1, 300};
  const std::vector<float> b = {1.0f};
  // Given out of order: the encoder sorts the map keys as deterministic protobuf does.
  ExampleEncoder encoder({{"b", FeatureColumn::Kind::kFloat, 1, b.data()},
                          {"a", FeatureColumn::Kind::kInt32, 2, a.data()}});
  std::string out;
  encoder.EncodeRow(0, &out);
  const std::string expected = Bytes({
      0x0A, 29,                                // Example.features
      0x0A, 12,                                // entry "a"
      0x0A, 1, 'a',                            //   key
      0x12, 7, 0x1A, 5, 0x0A, 3, 0x01, 0xAC, 0x02,  // Feature{int64_list{1, 300}}
      0x0A, 13,                                // entry "b"
      0x0A, 1, 'b',                            //   key
      0x12, 8, 0x12, 6, 0x0A, 4, 0x00, 0x00, 0x80, 0x3F,  // Feature{float_list{1.0}}
  });
  EXPECT(out == expected);
}

void TestNegativeIdsTakeTenBytes() {
  const std::vector<int64_t> v = {-1};
  const std::vector<int32_t> w = {-1};
  ExampleEncoder wide({{"x", FeatureColumn::Kind::kInt64, 1, v.data()}});
  ExampleEncoder narrow({{"x", FeatureColumn::Kind::kInt32, 1, w.data()}});
  std::string a, b;
  wide.EncodeRow(0, &a);
  narrow.EncodeRow(0, &b);
  EXPECT(a == b);  // an int32 is widened to int64 first, as Int64List does
  const std::string tail =
      Bytes({0x0A, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01});
  EXPECT(a.size() > tail.size() && a.compare(a.size() - tail.size(), tail.size(), tail) == 0);
}

void TestEmptyListHasNoValuesField() {
  ExampleEncoder encoder({{"e", FeatureColumn::Kind::kInt64, 0, nullptr}});
  std::string out;
  encoder.EncodeRow(3, &out);
  // Example{features{feature{key: "e" value{int64_list{}}}}}
  EXPECT(out == Bytes({0x0A, 9, 0x0A, 7, 0x0A, 1, 'e', 0x12, 2, 0x1A, 0}));
}

void TestRowsAreIndependentAndLongFieldsUseWideLengths() {
  // 100 ids of 3 bytes each: lengths above 127 need two-byte varints at every level.
  std::vector<int32_t> ids(2 * 100);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i < 100 ? 20000 : 5;
  ExampleEncoder encoder({{"ids", FeatureColumn::Kind::kInt32, 100, ids.data()}});
  std::string first, second, again;
  encoder.EncodeRow(0, &first);
  encoder.EncodeRow(1, &second);
  encoder.EncodeRow(0, &again);
  EXPECT(first == again);
  // payload 300 -> list 303 -> feature 306 -> entry 5 + 309 = 314 -> features 317 -> 320.
  EXPECT(first.size() == 320);
  EXPECT(second.size() == 2 + 2 + 5 + 2 + 2 + 2 + 100);
  EXPECT(static_cast<unsigned char>(first[1]) == ((317 & 0x7F) | 0x80) &&
         static_cast<unsigned char>(first[2]) == 317 >> 7);
}

void TestCrc32cAndFraming() {
  EXPECT(Crc32c("123456789", 9) == 0xE3069283u);  // the standard check value
  EXPECT(Crc32c("", 0) == 0);
  // 32 bytes of zeros, from RFC 3720 B.4.
  const std::string zeros(32, '\0');
  EXPECT(Crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
  std::string framed;
  AppendTFRecord("abc", &framed);
  EXPECT(framed.size() == 8 + 4 + 3 + 4);
  EXPECT(framed.compare(0, 8, Bytes({3, 0, 0, 0, 0, 0, 0, 0})) == 0);
  EXPECT(framed.compare(12, 3, "abc") == 0);
  const uint32_t crc = Crc32c("abc", 3);
  const uint32_t masked = ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
  EXPECT(static_cast<unsigned char>(framed[15]) == (masked & 0xFF) &&
         static_cast<unsigned char>(framed[18]) == masked >> 24);
}

void TestValidation() {
  const int32_t x = 0;
  EXPECT(ValidateColumns({{"a", FeatureColumn::Kind::kInt32, 1, &x}}).empty());
  EXPECT(ValidateColumns({{"a", FeatureColumn::Kind::kInt32, 1, &x},
                          {"a", FeatureColumn::Kind::kFloat, 1, &x}}) ==
         "feature name 'a' given twice");
  EXPECT(!ValidateColumns({{"a", FeatureColumn::Kind::kInt32, -1, &x}}).empty());
  EXPECT(VarintSize(0) == 1 && VarintSize(127) == 1 && VarintSize(128) == 2 &&
         VarintSize(~0ull) == 10);
}

}  // namespace
}  // namespace pretrain_records

int main() {
  using namespace pretrain_records;
  return RunTests({
      {"KnownExample", TestKnownExample},
      {"NegativeIdsTakeTenBytes", TestNegativeIdsTakeTenBytes},
      {"EmptyListHasNoValuesField", TestEmptyListHasNoValuesField},
      {"RowsAreIndependentAndLongFieldsUseWideLengths",
       TestRowsAreIndependentAndLongFieldsUseWideLengths},
      {"Crc32cAndFraming", TestCrc32cAndFraming},
      {"Validation", TestValidation},
  });
}
