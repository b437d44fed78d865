// The counter-based random generator of the C++ core (masking, instances).
#ifndef PRETRAIN_RECORDS_OPS_CC_CORE_ROW_RANDOM_H_
#define PRETRAIN_RECORDS_OPS_CC_CORE_ROW_RANDOM_H_

#include <cstdint>

namespace pretrain_records {

// SplitMix64 output over a Weyl sequence whose start is a mix of the seed pair
// and the row index: (seed0, seed1, row) and (seed0, seed1 + 1, row - 1) are the
// same stream, so a batch's row i can draw from (seed0, seed1 + i).
class RowRandom {
 public:
  RowRandom(uint64_t seed0, uint64_t seed1, uint64_t row)
      : state_(Mix(Mix(seed0 ^ 0x243F6A8885A308D3ull) ^ (seed1 + row))) {}
  uint64_t Next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return Mix(state_);
  }
  // Uniform integer in [0, n) by Lemire's multiply-shift (n >= 1).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform double in [0, 1).
  double Uniform() { return (Next() >> 11) * 0x1.0p-53; }
  static uint64_t Mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace pretrain_records

#endif  // PRETRAIN_RECORDS_OPS_CC_CORE_ROW_RANDOM_H_
