// Thin TensorFlow adapter over the C++ core: reads attrs once, checks tensor
// shapes, masks rows in parallel and packs ragged outputs.
#include <memory>
#include <mutex>
#include <vector>

#include "../core/ngram_masker.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/errors.h"
#include "tensorflow/core/util/work_sharder.h"

namespace pretrain_records {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
namespace errors = ::tensorflow::errors;

template <typename T, typename Tboundary>
class NgramMaskOp : public OpKernel {
 public:
  explicit NgramMaskOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::vector<int64_t> specials;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_n", &options_.max_n));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mask_ratio", &options_.mask_ratio));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_predictions", &options_.max_predictions));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("favor_shorter_ngram", &options_.favor_shorter_ngram));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("whole_word", &options_.whole_word));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("special_ids", &specials));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mask_id", &options_.mask_id));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("vocab_size", &options_.vocab_size));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mask_token_rate", &options_.mask_token_rate));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("random_token_rate", &options_.random_token_rate));
    options_.special_ids.assign(specials.begin(), specials.end());
    const std::string problem = ValidateOptions(options_);
    OP_REQUIRES(ctx, problem.empty(), errors::InvalidArgument("NgramMask: ", problem));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& values = ctx->input(0);
    const Tensor& boundary = ctx->input(1);
    const Tensor& splits_in = ctx->input(2);
    const Tensor& seed = ctx->input(3);
    OP_REQUIRES(ctx, values.dims() == 1,
                errors::InvalidArgument("NgramMask: values must be a vector, got shape ",
                                        values.shape().DebugString()));
    OP_REQUIRES(ctx, boundary.shape() == values.shape(),
                errors::InvalidArgument("NgramMask: token_boundary shape ",
                                        boundary.shape().DebugString(),
                                        " does not match token_ids shape ",
                                        values.shape().DebugString()));
    OP_REQUIRES(ctx, seed.dims() == 1 && seed.NumElements() == 2,
                errors::InvalidArgument("NgramMask: seed must have shape [2], got ",
                                        seed.shape().DebugString()));
    OP_REQUIRES(ctx, splits_in.dims() == 1,
                errors::InvalidArgument("NgramMask: row_splits must be a vector"));
    const int64_t n_values = values.NumElements();
    std::vector<int64_t> single_row;
    const int64_t* splits;
    int64_t rows;
    if (splits_in.NumElements() == 0) {
      single_row = {0, n_values};
      splits = single_row.data();
      rows = 1;
    } else {
      splits = splits_in.flat<int64_t>().data();
      rows = splits_in.NumElements() - 1;
      OP_REQUIRES(ctx, splits[0] == 0 && splits[rows] == n_values,
                  errors::InvalidArgument("NgramMask: row_splits must start at 0 and end at ",
                                          n_values));
      for (int64_t r = 0; r < rows; ++r) {
        OP_REQUIRES(ctx, splits[r] <= splits[r + 1],
                    errors::InvalidArgument("NgramMask: row_splits must be non-decreasing"));
        OP_REQUIRES(ctx, splits[r + 1] - splits[r] < (int64_t{1} << 31),
                    errors::InvalidArgument("NgramMask: a row is longer than 2^31 - 1"));
      }
    }
    const auto seed_flat = seed.flat<int64_t>();
    const uint64_t seed0 = static_cast<uint64_t>(seed_flat(0));
    const uint64_t seed1 = static_cast<uint64_t>(seed_flat(1));

    Tensor* masked = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, values.shape(), &masked));
    const T* ids = values.flat<T>().data();
    const Tboundary* flags = boundary.flat<Tboundary>().data();
    T* out_ids = masked->flat<T>().data();

    // Each row writes into its own slot, sized by its budget bound (a row of len tokens never
    // predicts more than Budget(len)); the slots are not zero-filled.
    std::vector<int64_t> slot(rows + 1);
    {
      std::unique_ptr<NgramMasker> masker = Acquire();
      slot[0] = 0;
      for (int64_t r = 0; r < rows; ++r) {
        slot[r + 1] = slot[r] + masker->Budget(static_cast<int>(splits[r + 1] - splits[r]));
      }
      Release(std::move(masker));
    }
    std::unique_ptr<int64_t[]> positions(new int64_t[slot[rows]]);
    std::unique_ptr<T[]> labels(new T[slot[rows]]);
    std::vector<int64_t> counts(rows);
    auto mask_rows = [&](int64_t begin, int64_t end) {
      std::unique_ptr<NgramMasker> masker = Acquire();
      for (int64_t r = begin; r < end; ++r) {
        const int64_t start = splits[r];
        counts[r] = masker->MaskRow(ids + start, flags + start,
                                    static_cast<int>(splits[r + 1] - start), seed0, seed1,
                                    static_cast<uint64_t>(r), out_ids + start,
                                    positions.get() + slot[r], labels.get() + slot[r]);
      }
      Release(std::move(masker));
    };
    if (rows < 256) {
      mask_rows(0, rows);
    } else {
      const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
      const int64_t cost_per_row = 20 * std::max<int64_t>(1, n_values / rows);
      ::tensorflow::Shard(workers->num_threads, workers->workers, rows, cost_per_row, mask_rows);
    }

    Tensor* out_splits = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({rows + 1}), &out_splits));
    auto splits_out = out_splits->flat<int64_t>();
    splits_out(0) = 0;
    for (int64_t r = 0; r < rows; ++r) splits_out(r + 1) = splits_out(r) + counts[r];
    const int64_t total = splits_out(rows);
    Tensor* out_positions = nullptr;
    Tensor* out_labels = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({total}), &out_positions));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({total}), &out_labels));
    int64_t* pos_out = out_positions->flat<int64_t>().data();
    T* lab_out = out_labels->flat<T>().data();
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(positions.get() + slot[r], counts[r], pos_out + splits_out(r));
      std::copy_n(labels.get() + slot[r], counts[r], lab_out + splits_out(r));
    }
  }

 private:
  // A small pool: maskers keep scratch buffers, and Compute may run concurrently.
  std::unique_ptr<NgramMasker> Acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mutex_);
      if (!pool_.empty()) {
        std::unique_ptr<NgramMasker> masker = std::move(pool_.back());
        pool_.pop_back();
        return masker;
      }
    }
    return std::make_unique<NgramMasker>(options_);
  }
  void Release(std::unique_ptr<NgramMasker> masker) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    pool_.push_back(std::move(masker));
  }

  MaskerOptions options_;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<NgramMasker>> pool_;
};

#define REGISTER_NGRAM_MASK(T, Tboundary)                          \
  REGISTER_KERNEL_BUILDER(Name("NgramMask")                        \
                              .Device(::tensorflow::DEVICE_CPU)    \
                              .TypeConstraint<T>("T")              \
                              .TypeConstraint<Tboundary>("Tboundary"), \
                          NgramMaskOp<T, Tboundary>)

REGISTER_NGRAM_MASK(int32_t, bool);
REGISTER_NGRAM_MASK(int32_t, int32_t);
REGISTER_NGRAM_MASK(int32_t, int64_t);
REGISTER_NGRAM_MASK(int64_t, bool);
REGISTER_NGRAM_MASK(int64_t, int32_t);
REGISTER_NGRAM_MASK(int64_t, int64_t);

}  // namespace pretrain_records
