#include "service/handlers/screen.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/impl/codegen/proto_buffer_reader.h"

namespace shoal::service::handlers {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// BatchRequest.ops, PipelineRequest.id and PipelineRequest.batch (kv.proto).
constexpr int k_batch_ops_field = 1;
constexpr int k_pipeline_id_field = 1;
constexpr int k_pipeline_batch_field = 3;

// Counts the occurrences of `field` in the message `in` is positioned in (up to its limit), and
// stops once there are more than `most`. Malformed bytes end the count early.
uint64_t count_field(CodedInputStream& in, int field, uint64_t most) {
  uint64_t n = 0;
  while (n <= most) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    if (WireFormatLite::GetTagFieldNumber(tag) == field) ++n;
    if (!WireFormatLite::SkipField(&in, tag)) break;
  }
  return n;
}

grpc::Status too_many(uint64_t most) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("the batch has more than ", most,
                                   " operations; the limit is live.max_batch_ops = ", most));
}

}  // namespace

grpc::Status screen_batch(const grpc::ByteBuffer& wire, const config::snapshot& cfg) {
  grpc::ByteBuffer view(wire);  // shares the slices; the reader leaves `wire` whole
  grpc::ProtoBufferReader reader(&view);
  CodedInputStream in(&reader);
  const uint64_t most = cfg.live().max_batch_ops();
  if (count_field(in, k_batch_ops_field, most) > most) return too_many(most);
  return grpc::Status::OK;
}

grpc::Status screen_pipeline_request(const grpc::ByteBuffer& wire, const config::snapshot& cfg,
                                     uint64_t* id) {
  grpc::ByteBuffer view(wire);
  grpc::ProtoBufferReader reader(&view);
  CodedInputStream in(&reader);
  const uint64_t most = cfg.live().max_batch_ops();
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return grpc::Status::OK;
    if (tag == WireFormatLite::MakeTag(k_pipeline_id_field, WireFormatLite::WIRETYPE_VARINT)) {
      if (!in.ReadVarint64(id)) return grpc::Status::OK;
      continue;
    }
    if (WireFormatLite::GetTagFieldNumber(tag) == k_pipeline_batch_field &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return grpc::Status::OK;
      const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
      if (count_field(in, k_batch_ops_field, most) > most) return too_many(most);
      in.Skip(in.BytesUntilLimit());
      in.PopLimit(limit);
      continue;
    }
    if (!WireFormatLite::SkipField(&in, tag)) return grpc::Status::OK;
  }
}

}  // namespace shoal::service::handlers
