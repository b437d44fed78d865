#include "example_encoder.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace pretrain_records {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "FloatList values are copied as little-endian bytes");

// Wire-format tags: (field number << 3) | 2, length-delimited.
constexpr char kField1 = 0x0A;  // Example.features, Features.feature entry, map key, list values
constexpr char kField2 = 0x12;  // map value, Feature.float_list
constexpr char kField3 = 0x1A;  // Feature.int64_list

// Int64List values are int64: a negative id takes ten bytes (two's complement).
inline uint64_t AsVarint(int64_t v) { return static_cast<uint64_t>(v); }

char* PutVarint(uint64_t n, char* p) {
  while (n >= 0x80) {
    *p++ = static_cast<char>((n & 0x7F) | 0x80);
    n >>= 7;
  }
  *p++ = static_cast<char>(n);
  return p;
}

// Size of a length-delimited field holding `size` bytes.
inline uint64_t Delimited(uint64_t size) { return 1 + VarintSize(size) + size; }

template <typename T>
uint64_t PackedIntSize(const T* values, int64_t n) {
  uint64_t size = 0;
  for (int64_t i = 0; i < n; ++i) size += VarintSize(AsVarint(values[i]));
  return size;
}

template <typename T>
char* PutPackedInts(const T* values, int64_t n, char* p) {
  for (int64_t i = 0; i < n; ++i) p = PutVarint(AsVarint(values[i]), p);
  return p;
}

// Feature { Int64List int64_list = 3 | FloatList float_list = 2 { repeated value = 1 [packed] } }
// An empty list has no values field at all.
inline uint64_t ListSize(uint64_t payload) { return payload ? Delimited(payload) : 0; }
inline uint64_t FeatureSize(uint64_t payload) { return Delimited(ListSize(payload)); }
inline uint64_t EntrySize(const FeatureColumn& c, uint64_t payload) {
  return Delimited(c.name.size()) + Delimited(FeatureSize(payload));
}

// Slicing-by-8 tables of the reflected Castagnoli polynomial.
struct Crc32cTables {
  uint32_t t[8][256];
  Crc32cTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
  }
};

inline uint32_t MaskedCrc(const char* data, size_t n) {
  const uint32_t crc = Crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

template <typename T>
void AppendLittleEndian(T value, std::string* out) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

}  // namespace

uint32_t Crc32c(const char* data, size_t n) {
  static const Crc32cTables tables;
  const auto& t = tables.t;
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo;
    std::memcpy(&lo, p, 4);
    lo ^= c;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
  }
  for (; n > 0; --n, ++p) c = (c >> 8) ^ t[0][(c ^ *p) & 0xFF];
  return ~c;
}

void AppendTFRecord(const std::string& record, std::string* out) {
  const uint64_t length = record.size();
  char header[sizeof(length)];
  std::memcpy(header, &length, sizeof(length));
  out->append(header, sizeof(header));
  AppendLittleEndian(MaskedCrc(header, sizeof(header)), out);
  out->append(record);
  AppendLittleEndian(MaskedCrc(record.data(), record.size()), out);
}

std::string ValidateColumns(const std::vector<FeatureColumn>& columns) {
  std::set<std::string> names;
  for (const FeatureColumn& c : columns) {
    if (!names.insert(c.name).second) return "feature name '" + c.name + "' given twice";
    if (c.width < 0) return "feature '" + c.name + "' has a negative width";
  }
  return "";
}

ExampleEncoder::ExampleEncoder(std::vector<FeatureColumn> columns)
    : columns_(std::move(columns)), payload_(columns_.size()) {
  std::sort(columns_.begin(), columns_.end(),
            [](const FeatureColumn& a, const FeatureColumn& b) { return a.name < b.name; });
}

void ExampleEncoder::EncodeRow(int64_t row, std::string* out) {
  uint64_t features = 0;
  for (size_t k = 0; k < columns_.size(); ++k) {
    const FeatureColumn& c = columns_[k];
    const int64_t first = row * c.width;
    switch (c.kind) {
      case FeatureColumn::Kind::kInt32:
        payload_[k] = PackedIntSize(static_cast<const int32_t*>(c.data) + first, c.width);
        break;
      case FeatureColumn::Kind::kInt64:
        payload_[k] = PackedIntSize(static_cast<const int64_t*>(c.data) + first, c.width);
        break;
      case FeatureColumn::Kind::kFloat:
        payload_[k] = 4 * static_cast<uint64_t>(c.width);
        break;
    }
    features += Delimited(EntrySize(c, payload_[k]));
  }
  out->resize(Delimited(features));
  char* p = out->data();
  *p++ = kField1;  // Example.features
  p = PutVarint(features, p);
  for (size_t k = 0; k < columns_.size(); ++k) {
    const FeatureColumn& c = columns_[k];
    const uint64_t payload = payload_[k];
    const int64_t first = row * c.width;
    *p++ = kField1;  // Features.feature: one map entry
    p = PutVarint(EntrySize(c, payload), p);
    *p++ = kField1;  // key
    p = PutVarint(c.name.size(), p);
    p = std::copy(c.name.begin(), c.name.end(), p);
    *p++ = kField2;  // value
    p = PutVarint(FeatureSize(payload), p);
    *p++ = c.kind == FeatureColumn::Kind::kFloat ? kField2 : kField3;
    p = PutVarint(ListSize(payload), p);
    if (payload == 0) continue;
    *p++ = kField1;  // packed values
    p = PutVarint(payload, p);
    switch (c.kind) {
      case FeatureColumn::Kind::kInt32:
        p = PutPackedInts(static_cast<const int32_t*>(c.data) + first, c.width, p);
        break;
      case FeatureColumn::Kind::kInt64:
        p = PutPackedInts(static_cast<const int64_t*>(c.data) + first, c.width, p);
        break;
      case FeatureColumn::Kind::kFloat:
        std::memcpy(p, static_cast<const float*>(c.data) + first, payload);
        p += payload;
        break;
    }
  }
}

}  // namespace pretrain_records
