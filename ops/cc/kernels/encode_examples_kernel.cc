// Thin TensorFlow adapter over the C++ Example encoder: checks shapes, encodes
// the rows of a batch in parallel, optionally framed as TFRecords.
#include <string>
#include <vector>

#include "../core/example_encoder.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/errors.h"
#include "tensorflow/core/util/work_sharder.h"

namespace pretrain_records {

using ::tensorflow::OpInputList;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;
namespace errors = ::tensorflow::errors;

template <typename Tint>
class EncodeExamplesOp : public OpKernel {
 public:
  explicit EncodeExamplesOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("int_names", &int_names_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("float_names", &float_names_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("tfrecord_frame", &tfrecord_frame_));
  }

  void Compute(OpKernelContext* ctx) override {
    OpInputList ints, floats;
    OP_REQUIRES_OK(ctx, ctx->input_list("ints", &ints));
    OP_REQUIRES_OK(ctx, ctx->input_list("floats", &floats));
    OP_REQUIRES(ctx, ints.size() == static_cast<int>(int_names_.size()) &&
                         floats.size() == static_cast<int>(float_names_.size()),
                errors::InvalidArgument("EncodeExamples: ", ints.size(), " int and ",
                                        floats.size(), " float inputs for ", int_names_.size(),
                                        " and ", float_names_.size(), " names"));
    const int64_t rows = ints[0].dims() >= 1 ? ints[0].dim_size(0) : -1;
    std::vector<FeatureColumn> columns;
    constexpr auto kInt = sizeof(Tint) == 4 ? FeatureColumn::Kind::kInt32
                                            : FeatureColumn::Kind::kInt64;
    for (int k = 0; k < ints.size() + floats.size(); ++k) {
      const bool is_int = k < ints.size();
      const Tensor& t = is_int ? ints[k] : floats[k - ints.size()];
      const std::string& name = is_int ? int_names_[k] : float_names_[k - ints.size()];
      OP_REQUIRES(ctx, t.dims() == 2 && t.dim_size(0) == rows,
                  errors::InvalidArgument("EncodeExamples: feature '", name,
                                          "' must have shape [rows, width] with the rows of the "
                                          "first feature, got ", t.shape().DebugString()));
      columns.push_back({name, is_int ? kInt : FeatureColumn::Kind::kFloat, t.dim_size(1),
                         is_int ? static_cast<const void*>(t.flat<Tint>().data())
                                : static_cast<const void*>(t.flat<float>().data())});
    }
    const std::string problem = ValidateColumns(columns);
    OP_REQUIRES(ctx, problem.empty(), errors::InvalidArgument("EncodeExamples: ", problem));

    Tensor* records = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows}), &records));
    auto out = records->flat<tstring>();
    int64_t bytes_per_row = 0;
    for (const FeatureColumn& c : columns) bytes_per_row += 4 * c.width + 16;
    auto encode = [&](int64_t begin, int64_t end) {
      ExampleEncoder encoder(columns);
      std::string buffer, framed;
      for (int64_t r = begin; r < end; ++r) {
        encoder.EncodeRow(r, &buffer);
        if (tfrecord_frame_) {
          framed.clear();
          AppendTFRecord(buffer, &framed);
          out(r).assign(framed.data(), framed.size());
        } else {
          out(r).assign(buffer.data(), buffer.size());
        }
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    ::tensorflow::Shard(workers->num_threads, workers->workers, rows, 20 * bytes_per_row,
                        encode);
  }

 private:
  std::vector<std::string> int_names_;
  std::vector<std::string> float_names_;
  bool tfrecord_frame_ = false;
};

#define REGISTER(Tint)                                                                    \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("EncodeExamples").Device(::tensorflow::DEVICE_CPU).TypeConstraint<Tint>("Tint"), \
      EncodeExamplesOp<Tint>)
REGISTER(int32_t);
REGISTER(int64_t);
#undef REGISTER

}  // namespace pretrain_records
