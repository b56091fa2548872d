// Server reflection: what grpcurl uses to list services and describe messages without .protos.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/e2e/shoald_process.h"

namespace shoal {
namespace {

namespace refl = grpc::reflection::v1alpha;
using testing::ctx;
using testing::shoald_process;

TEST(reflection, lists_the_services_and_serves_their_descriptors) {
  shoald_process s;
  auto stub = refl::ServerReflection::NewStub(s.channel());
  auto c = ctx();
  auto stream = stub->ServerReflectionInfo(c.get());

  refl::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  refl::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> names;
  for (const auto& svc : resp.list_services_response().service()) names.push_back(svc.name());
  for (const char* want : {"shoal.v1.KV", "shoal.v1.Admin", "grpc.health.v1.Health"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }

  refl::ServerReflectionRequest file;
  file.set_file_containing_symbol("shoal.v1.KV");
  ASSERT_TRUE(stream->Write(file));
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
  google::protobuf::FileDescriptorProto fd;
  ASSERT_TRUE(fd.ParseFromString(resp.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(fd.package(), "shoal.v1");
  bool has_put = false;
  for (const auto& svc : fd.service()) {
    for (const auto& m : svc.method()) has_put |= m.name() == "Put";
  }
  EXPECT_TRUE(has_put);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(current_thread, the_server_serves_every_kind_of_call_on_one_worker) {
  // No metrics endpoint: its HTTP server's stop polls for up to ~2 s (deploy/README), and the
  // stop measured here is shoald's own.
  shoald_process s({"--runtime=current_thread", "--log_level=debug", "--metrics_listen="});
  auto kv = s.kv();
  v1::WatchRequest wr;
  wr.set_key("k");
  wr.set_start_revision(1);
  auto wc = ctx();
  auto watch = kv->Watch(wc.get(), wr);
  for (int i = 0; i < 100; ++i) {
    v1::PutRequest p;
    p.set_key("k");
    p.set_value(std::to_string(i));
    v1::PutResponse pr;
    ASSERT_TRUE(kv->Put(ctx().get(), p, &pr).ok());
  }
  int events = 0;
  v1::WatchResponse resp;
  while (events < 100 && watch->Read(&resp)) events += resp.events_size();
  EXPECT_EQ(events, 100);
  wc->TryCancel();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(s.terminate(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace shoal
