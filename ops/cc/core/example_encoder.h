// tf.train.Example records in the protobuf wire format, in plain C++17.
//
// Byte for byte what `Example.SerializeToString(deterministic=True)` gives: the
// feature map's entries sorted by key, every list packed. The TensorFlow kernel
// in ../kernels feeds it batches of [rows, width] columns.
#ifndef PRETRAIN_RECORDS_OPS_CC_CORE_EXAMPLE_ENCODER_H_
#define PRETRAIN_RECORDS_OPS_CC_CORE_EXAMPLE_ENCODER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pretrain_records {

// One feature of every row: row r's values are data[r * width, (r + 1) * width).
struct FeatureColumn {
  enum class Kind { kInt32, kInt64, kFloat };
  std::string name;
  Kind kind;
  int64_t width;
  const void* data;  // int32_t, int64_t or float, row-major; not owned
};

class ExampleEncoder {
 public:
  // Columns in any order; names must be distinct (see ValidateColumns).
  explicit ExampleEncoder(std::vector<FeatureColumn> columns);

  // Replaces *out with row `row`'s serialized Example.
  void EncodeRow(int64_t row, std::string* out);

 private:
  std::vector<FeatureColumn> columns_;  // sorted by name
  std::vector<uint64_t> payload_;       // scratch: packed bytes of each column's row
};

// CRC-32C (Castagnoli), the checksum of TFRecord framing.
uint32_t Crc32c(const char* data, size_t n);

// Appends `record` as one TFRecord: uint64 length, masked CRC of the length, the bytes,
// masked CRC of the bytes (all little-endian).
void AppendTFRecord(const std::string& record, std::string* out);

// Returns an empty string when the columns can form Examples, else a one-line message.
std::string ValidateColumns(const std::vector<FeatureColumn>& columns);

// Bytes of the base-128 varint of n.
inline int VarintSize(uint64_t n) {
  int size = 1;
  while (n >= 0x80) {
    n >>= 7;
    ++size;
  }
  return size;
}

}  // namespace pretrain_records

#endif  // PRETRAIN_RECORDS_OPS_CC_CORE_EXAMPLE_ENCODER_H_
