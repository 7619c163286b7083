// Growing a topic (API_CREATE_PARTITIONS through Admin::CreatePartitions and
// `brook topic alter`) on a real brook-server: new partitions get leaders and
// take records while the old ones keep theirs, the change survives a kill -9
// of the server, bad counts are refused, and a group consumer and a topic
// spout pick the new partitions up while running.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "brook/streams/local_cluster.h"
#include "brook/streams/topic.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cli_runner.h"
#include "tests/integration/groups_client_util.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class PartitionsTest : public ::testing::Test {
 protected:
  PartitionsTest() : server_({"--group-initial-rebalance-delay-ms=0"}) {}

  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok()) << server_.LogTail();
    admin_ = MakeAdmin();
    ASSERT_NE(admin_, nullptr);
  }

  std::string Nameservers() const { return server_.nameserver().ToString(); }

  std::unique_ptr<client::Admin> MakeAdmin() {
    auto admin = client::Admin::Create(client::AdminConfig{Nameservers(), 10s});
    EXPECT_TRUE(admin.ok()) << admin.status();
    return admin.ok() ? std::move(*admin) : nullptr;
  }

  void CreateTopic(const std::string& name, int32_t partitions) {
    auto info = admin_->CreateTopic(client::NewTopic{name, partitions, 1, {}});
    ASSERT_TRUE(info.ok()) << info.status();
  }

  // Sends `n` records to each of `partitions` with a new producer (which
  // learns the current partition count); values "p:i".
  void Produce(const std::string& topic, const std::vector<int32_t>& partitions, int n) {
    client::ProducerConfig config;
    config.nameservers = Nameservers();
    auto producer = client::Producer::Create(config);
    ASSERT_TRUE(producer.ok()) << producer.status();
    std::atomic<int> failed{0};
    for (int32_t p : partitions) {
      for (int i = 0; i < n; ++i) {
        client::ProducerRecord r;
        r.topic = topic;
        r.partition = p;
        r.value = absl::StrCat(p, ":", i);
        (*producer)->Send(std::move(r), [&](const absl::StatusOr<client::RecordMetadata>& m) {
          if (!m.ok()) ++failed;
        });
      }
    }
    ASSERT_TRUE((*producer)->Close().ok());
    ASSERT_EQ(failed.load(), 0);
  }

  ServerProcess server_;
  std::unique_ptr<client::Admin> admin_;
};

TEST_F(PartitionsTest, GrowsTopicKeepingExistingRecordsAndSurvivesRestart) {
  CreateTopic("grow", 2);
  Produce("grow", {0, 1}, 10);
  auto grown = admin_->CreatePartitions("grow", 5);
  ASSERT_TRUE(grown.ok()) << grown.status();
  ASSERT_EQ(grown->partitions.size(), 5u);
  for (const auto& p : grown->partitions) EXPECT_GE(p.leader, 0) << "partition " << p.partition;
  Produce("grow", {4}, 7);

  auto described = admin_->DescribeTopic("grow");
  ASSERT_TRUE(described.ok()) << described.status();
  ASSERT_EQ(described->partitions.size(), 5u);
  std::map<int32_t, int64_t> hw;
  for (const auto& p : described->partitions) hw[p.partition] = p.high_watermark;
  EXPECT_EQ(hw, (std::map<int32_t, int64_t>{{0, 10}, {1, 10}, {2, 0}, {3, 0}, {4, 7}}));

  // The added partitions are in the metadata log: a restarted server has them.
  ASSERT_TRUE(server_.Restart().ok()) << server_.LogTail();
  admin_ = MakeAdmin();
  ASSERT_NE(admin_, nullptr);
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto d = admin_->DescribeTopic("grow");
        if (!d.ok() || d->partitions.size() != 5) return false;
        for (const auto& p : d->partitions) {
          if (p.high_watermark != (p.partition == 4 ? 7 : p.partition < 2 ? 10 : 0)) return false;
        }
        return true;
      },
      20s))
      << server_.LogTail();
}

TEST_F(PartitionsTest, RefusesCountsThatDoNotGrowAndUnknownTopics) {
  CreateTopic("fixed", 3);
  auto same = admin_->CreatePartitions("fixed", 3);
  ASSERT_FALSE(same.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(same.status())) << same.status();
  EXPECT_THAT(std::string(same.status().message()), HasSubstr("has 3 partitions"));
  auto fewer = admin_->CreatePartitions("fixed", 2);
  EXPECT_TRUE(absl::IsInvalidArgument(fewer.status())) << fewer.status();
  auto huge = admin_->CreatePartitions("fixed", 1000000);
  EXPECT_TRUE(absl::IsInvalidArgument(huge.status())) << huge.status();
  auto unknown = admin_->CreatePartitions("no-such-topic", 4);
  EXPECT_TRUE(absl::IsNotFound(unknown.status())) << unknown.status();
  auto d = admin_->DescribeTopic("fixed");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->partitions.size(), 3u);
}

TEST_F(PartitionsTest, GroupConsumerRejoinsForAddedPartitions) {
  CreateTopic("grow-group", 2);
  client::ConsumerConfig config;
  config.nameservers = Nameservers();
  config.group_id = "grow-group-readers";
  config.metadata_max_age = 300ms;
  GroupWorker worker(config, [](client::Consumer& c, client::RebalanceListener* l) {
    return c.Subscribe({"grow-group"}, l);
  });
  ASSERT_TRUE(WaitUntil([&] { return worker.Assignment().size() == 2; }, 20s))
      << worker.error();
  ASSERT_TRUE(admin_->CreatePartitions("grow-group", 4).ok());
  ASSERT_TRUE(WaitUntil([&] { return worker.Assignment().size() == 4; }, 20s))
      << "assignment stayed at " << worker.Assignment().size() << "\n"
      << server_.LogTail();
  Produce("grow-group", {3}, 5);
  ASSERT_TRUE(WaitUntil(
      [&] {
        int n = 0;
        for (const auto& r : worker.Records()) n += r.partition == 3;
        return n == 5;
      },
      20s));
}

// Records every tuple's (partition, offset) and acks it.
class RecordingBolt : public streams::IBolt {
 public:
  RecordingBolt(std::mutex* mu, std::set<std::pair<int64_t, int64_t>>* seen) : mu_(mu), seen_(seen) {}
  void prepare(const streams::TopologyContext&, streams::OutputCollector* c) override { c_ = c; }
  void execute(const streams::Tuple& t) override {
    {
      std::lock_guard<std::mutex> l(*mu_);
      seen_->insert({t.get_int64("partition"), t.get_int64("offset")});
    }
    c_->ack(t);
  }

 private:
  std::mutex* mu_;
  std::set<std::pair<int64_t, int64_t>>* seen_;
  streams::OutputCollector* c_ = nullptr;
};

TEST_F(PartitionsTest, TopicSpoutReadsAddedPartitionsFromTheirBeginning) {
  CreateTopic("grow-spout", 1);
  Produce("grow-spout", {0}, 5);
  std::mutex mu;
  std::set<std::pair<int64_t, int64_t>> seen;
  auto count = [&](int64_t partition) {
    std::lock_guard<std::mutex> l(mu);
    return std::count_if(seen.begin(), seen.end(),
                         [&](const auto& po) { return po.first == partition; });
  };
  streams::TopicSpoutOptions o;
  o.topic = "grow-spout";
  o.group_id = "grow-spout-topology";
  o.nameservers = Nameservers();
  o.commit_interval = 100ms;
  o.partition_check_interval = 200ms;
  o.consumer.metadata_max_age = 200ms;
  streams::TopologyBuilder b;
  b.set_spout("read", streams::TopicSpout(o), 1);
  b.set_bolt("record", [&] { return std::make_unique<RecordingBolt>(&mu, &seen); })
      .shuffle_grouping("read");
  streams::LocalCluster cluster;
  ASSERT_TRUE(cluster.Submit("grow-spout", streams::Config{}, b.build()).ok());
  ASSERT_TRUE(WaitUntil([&] { return count(0) == 5; }, 20s));

  // Records written to the new partitions before the spout notices them are
  // read too: a partition found while running starts at its beginning.
  ASSERT_TRUE(admin_->CreatePartitions("grow-spout", 3).ok());
  Produce("grow-spout", {1, 2}, 4);
  ASSERT_TRUE(WaitUntil([&] { return count(1) == 4 && count(2) == 4; }, 20s))
      << "partition 1: " << count(1) << ", partition 2: " << count(2);
  ASSERT_TRUE(cluster.Stop(10s).ok());
  EXPECT_EQ(count(0), 5);

  // Their offsets were committed with the rest.
  client::ConsumerConfig cc;
  cc.nameservers = Nameservers();
  cc.group_id = "grow-spout-topology";
  auto consumer = client::Consumer::Create(cc);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  auto committed = (*consumer)->Committed(
      {{"grow-spout", 0}, {"grow-spout", 1}, {"grow-spout", 2}});
  ASSERT_TRUE(committed.ok()) << committed.status();
  std::map<int32_t, int64_t> got;
  for (const auto& [tp, om] : *committed) got[tp.partition] = om.offset;
  EXPECT_EQ(got, (std::map<int32_t, int64_t>{{0, 5}, {1, 4}, {2, 4}}));
  (*consumer)->Close();
}

TEST_F(PartitionsTest, CliAlterGrowsAndRefusesShrinking) {
  const std::vector<std::string> ns = {"--nameserver", Nameservers()};
  auto brook = [&](std::vector<std::string> args) {
    args.insert(args.begin(), ns.begin(), ns.end());
    return RunCli(args);
  };
  CliResult created = brook({"topic", "create", "cli-grow", "--partitions", "2"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  CliResult grown = brook({"topic", "alter", "cli-grow", "--partitions", "4"});
  ASSERT_EQ(grown.exit_code, 0) << Describe(grown);
  EXPECT_THAT(grown.out, HasSubstr("now has 4 partition(s)"));
  CliResult shrink = brook({"topic", "alter", "cli-grow", "--partitions", "3"});
  EXPECT_NE(shrink.exit_code, 0) << Describe(shrink);
  EXPECT_THAT(shrink.err, HasSubstr("has 4 partitions"));
  CliResult missing = brook({"topic", "alter", "cli-grow"});
  EXPECT_NE(missing.exit_code, 0) << Describe(missing);
  EXPECT_THAT(missing.err, HasSubstr("--partitions"));
  CliResult described = brook({"topic", "describe", "cli-grow"});
  ASSERT_EQ(described.exit_code, 0) << Describe(described);
  EXPECT_THAT(described.out, HasSubstr("Partitions: 4"));
}

}  // namespace
}  // namespace brook::testing
