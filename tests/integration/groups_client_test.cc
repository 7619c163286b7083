// Group consumers (brook/consumer.h Subscribe) against one real brook-server
// with every role: partitions shared disjointly, a leaving member's
// partitions moving, cooperative rebalances revoking only moved partitions,
// a static member restarting without a rebalance, pattern subscriptions
// picking up new topics, commits, committed offsets and pause/resume.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/groups_client_util.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using client::ConsumerConfig;
using client::TopicPartition;
using namespace std::chrono_literals;

class GroupsClientTest : public ::testing::Test {
 protected:
  GroupsClientTest() : server_({"--group-initial-rebalance-delay-ms=0"}) {}

  void SetUp() override { ASSERT_TRUE(server_.Start().ok()) << server_.LogTail(); }

  std::string Nameservers() const { return server_.nameserver().ToString(); }

  void CreateTopic(const std::string& name, int32_t partitions) {
    client::AdminConfig config;
    config.nameservers = Nameservers();
    config.request_timeout = 10s;
    auto admin = client::Admin::Create(config);
    ASSERT_TRUE(admin.ok()) << admin.status();
    auto info = (*admin)->CreateTopic(client::NewTopic{name, partitions, 1, {}});
    ASSERT_TRUE(info.ok()) << info.status();
  }

  // Produces `per_partition` records to each partition; values "p:i".
  void Produce(const std::string& topic, int32_t partitions, int per_partition, int start = 0) {
    client::ProducerConfig config;
    config.nameservers = Nameservers();
    auto producer = client::Producer::Create(config);
    ASSERT_TRUE(producer.ok()) << producer.status();
    for (int32_t p = 0; p < partitions; ++p) {
      for (int i = start; i < start + per_partition; ++i) {
        client::ProducerRecord r;
        r.topic = topic;
        r.partition = p;
        r.value = absl::StrCat(p, ":", i);
        (*producer)->Send(std::move(r), [](const absl::StatusOr<client::RecordMetadata>& m) {
          EXPECT_TRUE(m.ok()) << m.status();
        });
      }
    }
    ASSERT_TRUE((*producer)->Flush(30s).ok());
    ASSERT_TRUE((*producer)->Close(30s).ok());
  }

  ConsumerConfig Config(const std::string& group, std::vector<std::string> assignors = {"range"}) {
    ConsumerConfig c;
    c.nameservers = Nameservers();
    c.group_id = group;
    c.assignors = std::move(assignors);
    c.auto_offset_reset = client::OffsetReset::kEarliest;
    c.heartbeat_interval = 300ms;
    c.session_timeout = 6s;
    c.auto_commit_interval = 500ms;
    c.metadata_max_age = 500ms;
    c.fetch_max_wait = 100ms;
    c.request_timeout = 10s;
    return c;
  }

  static GroupWorker::SubscribeFn Topics(std::vector<std::string> topics) {
    return [topics](client::Consumer& c, client::RebalanceListener* l) {
      return c.Subscribe(topics, l);
    };
  }

  // True when the workers' assignments are disjoint, cover `total` partitions
  // and all report the same generation.
  static bool Settled(const std::vector<GroupWorker*>& workers, size_t total) {
    std::set<TopicPartition> all;
    size_t n = 0;
    int32_t generation = -2;
    for (auto* w : workers) {
      const auto m = w->Membership();
      if (m.generation < 0) return false;
      if (generation != -2 && m.generation != generation) return false;
      generation = m.generation;
      for (const auto& tp : w->Assignment()) {
        all.insert(tp);
        ++n;
      }
    }
    return n == total && all.size() == total;
  }

  ServerProcess server_;
};

TEST_F(GroupsClientTest, ThreeConsumersShareSixPartitionsAndReadEveryRecordOnce) {
  CreateTopic("shared", 6);
  std::vector<std::unique_ptr<GroupWorker>> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(std::make_unique<GroupWorker>(Config("g-share"), Topics({"shared"})));
  }
  std::vector<GroupWorker*> ws = {workers[0].get(), workers[1].get(), workers[2].get()};
  ASSERT_TRUE(WaitUntil([&] { return Settled(ws, 6); }, 20s));
  for (auto* w : ws) {
    EXPECT_EQ(w->Assignment().size(), 2u);
    EXPECT_TRUE(w->error().ok()) << w->error();
  }
  Produce("shared", 6, 50);
  ASSERT_TRUE(WaitUntil(
      [&] { return ws[0]->RecordCount() + ws[1]->RecordCount() + ws[2]->RecordCount() >= 300; },
      20s));
  std::this_thread::sleep_for(300ms);  // nothing more may arrive
  std::map<std::pair<int32_t, int64_t>, int> seen;
  for (auto* w : ws) {
    const auto owned = w->Assignment();
    for (const auto& r : w->Records()) {
      ++seen[{r.partition, r.offset}];
      EXPECT_NE(std::find(owned.begin(), owned.end(), TopicPartition{"shared", r.partition}),
                owned.end())
          << "record of a partition the member does not own";
      EXPECT_EQ(*r.value, absl::StrCat(r.partition, ":", r.offset));
    }
  }
  EXPECT_EQ(seen.size(), 300u);
  for (const auto& [key, n] : seen) EXPECT_EQ(n, 1) << key.first << "/" << key.second;
}

TEST_F(GroupsClientTest, LeavingMemberPartitionsMove) {
  CreateTopic("moving", 6);
  auto a = std::make_unique<GroupWorker>(Config("g-move"), Topics({"moving"}));
  auto b = std::make_unique<GroupWorker>(Config("g-move"), Topics({"moving"}));
  ASSERT_TRUE(WaitUntil([&] { return Settled({a.get(), b.get()}, 6); }, 20s));
  const int32_t generation = a->Membership().generation;
  b->Stop();  // commits, revokes, leaves
  ASSERT_TRUE(WaitUntil([&] { return a->Assignment().size() == 6; }, 15s));
  EXPECT_GT(a->Membership().generation, generation);
  Produce("moving", 6, 10);
  ASSERT_TRUE(WaitUntil([&] { return a->RecordCount() >= 60; }, 15s));
  EXPECT_TRUE(a->error().ok()) << a->error();
}

TEST_F(GroupsClientTest, CooperativeRebalanceRevokesOnlyMovedPartitions) {
  CreateTopic("coop", 6);
  const std::vector<std::string> coop = {"cooperative-sticky"};
  auto a = std::make_unique<GroupWorker>(Config("g-coop", coop), Topics({"coop"}));
  auto b = std::make_unique<GroupWorker>(Config("g-coop", coop), Topics({"coop"}));
  ASSERT_TRUE(WaitUntil([&] { return Settled({a.get(), b.get()}, 6); }, 20s));
  EXPECT_EQ(a->Membership().protocol, "cooperative-sticky");
  const Parts before_a = a->Assignment();
  const Parts before_b = b->Assignment();
  const size_t events_a = a->Events().size();
  const size_t events_b = b->Events().size();
  auto c = std::make_unique<GroupWorker>(Config("g-coop", coop), Topics({"coop"}));
  ASSERT_TRUE(WaitUntil([&] { return Settled({a.get(), b.get(), c.get()}, 6); }, 20s));
  for (auto* w : {a.get(), b.get(), c.get()}) EXPECT_EQ(w->Assignment().size(), 2u);
  // Every revocation names only partitions that left the member; nothing
  // else was revoked or lost.
  size_t revoked = 0;
  auto check = [&](GroupWorker* w, const Parts& before, size_t skip) {
    const auto events = w->Events();
    const auto after = w->Assignment();
    for (size_t i = skip; i < events.size(); ++i) {
      EXPECT_NE(events[i].kind, RebalanceEvent::kLost);
      if (events[i].kind != RebalanceEvent::kRevoked) continue;
      for (const auto& tp : events[i].parts) {
        ++revoked;
        EXPECT_NE(std::find(before.begin(), before.end(), tp), before.end());
        EXPECT_EQ(std::find(after.begin(), after.end(), tp), after.end()) << "kept yet revoked";
      }
    }
  };
  check(a.get(), before_a, events_a);
  check(b.get(), before_b, events_b);
  EXPECT_EQ(revoked, 2u) << "exactly the partitions that moved to the new member";
  // The untouched partitions kept their owner.
  size_t kept = 0;
  for (const auto& tp : a->Assignment()) {
    kept += std::count(before_a.begin(), before_a.end(), tp);
  }
  for (const auto& tp : b->Assignment()) {
    kept += std::count(before_b.begin(), before_b.end(), tp);
  }
  EXPECT_EQ(kept, 4u);
}

TEST_F(GroupsClientTest, StaticMemberRestartKeepsGenerationAndPartitions) {
  CreateTopic("static", 4);
  auto config = [&](const std::string& id) {
    auto c = Config("g-static");
    c.group_instance_id = id;
    return c;
  };
  auto a = std::make_unique<GroupWorker>(config("inst-a"), Topics({"static"}));
  auto b = std::make_unique<GroupWorker>(config("inst-b"), Topics({"static"}));
  ASSERT_TRUE(WaitUntil([&] { return Settled({a.get(), b.get()}, 4); }, 20s));
  const int32_t generation = a->Membership().generation;
  const Parts owned_a = a->Assignment();
  const size_t events_b = b->Events().size();
  a->Stop();  // a static member does not leave
  a = std::make_unique<GroupWorker>(config("inst-a"), Topics({"static"}));
  ASSERT_TRUE(WaitUntil([&] { return a->Assignment() == owned_a; }, 15s));
  EXPECT_EQ(a->Membership().generation, generation);
  std::this_thread::sleep_for(1s);  // heartbeats would reveal a rebalance
  EXPECT_EQ(b->Membership().generation, generation);
  EXPECT_EQ(b->Events().size(), events_b) << "the other member saw no rebalance";
}

TEST_F(GroupsClientTest, MemberThatStopsPollingLeavesAndRejoins) {
  CreateTopic("slow", 4);
  auto config = Config("g-slow");
  config.max_poll_interval = 1500ms;
  auto a = std::make_unique<GroupWorker>(config, Topics({"slow"}));
  auto b = std::make_unique<GroupWorker>(config, Topics({"slow"}));
  ASSERT_TRUE(WaitUntil([&] { return Settled({a.get(), b.get()}, 4); }, 20s));
  // b's thread stops polling for 4 s: its heartbeat thread leaves the group
  // after max_poll_interval and a takes everything.
  b->Post([](client::Consumer&) { std::this_thread::sleep_for(4s); });
  ASSERT_TRUE(WaitUntil([&] { return a->Assignment().size() == 4; }, 10s));
  // Back in Poll, b learns its partitions were lost and rejoins.
  ASSERT_TRUE(WaitUntil([&] { return Settled({a.get(), b.get()}, 4) && b->Assignment().size() == 2; },
                        20s));
  const auto events = b->Events();
  EXPECT_TRUE(std::any_of(events.begin(), events.end(),
                          [](const RebalanceEvent& e) { return e.kind == RebalanceEvent::kLost; }));
}

TEST_F(GroupsClientTest, PatternSubscriptionPicksUpNewTopic) {
  CreateTopic("pat-a", 2);
  CreateTopic("other", 2);
  auto w = std::make_unique<GroupWorker>(
      Config("g-pattern"), [](client::Consumer& c, client::RebalanceListener* l) {
        return c.SubscribePattern("pat-.*", l);
      });
  ASSERT_TRUE(WaitUntil([&] { return w->Assignment().size() == 2; }, 20s));
  CreateTopic("pat-b", 3);
  ASSERT_TRUE(WaitUntil([&] { return w->Assignment().size() == 5; }, 20s));
  for (const auto& tp : w->Assignment()) EXPECT_NE(tp.topic, "other");
  std::vector<std::string> subscription;
  w->Run([&](client::Consumer& c) { subscription = c.Subscription(); });
  EXPECT_THAT(subscription, ::testing::ElementsAre("pat-a", "pat-b"));
  Produce("pat-b", 3, 5);
  ASSERT_TRUE(WaitUntil([&] { return w->RecordCount() >= 15; }, 15s));
}

TEST_F(GroupsClientTest, SubscribedTopicCreatedLaterIsAssigned) {
  // A change of a subscribed topic's partition count (here 0 -> 3) found by
  // the metadata check triggers a rebalance.
  auto w = std::make_unique<GroupWorker>(Config("g-later"), Topics({"later"}));
  ASSERT_TRUE(WaitUntil([&] { return w->Membership().generation >= 0; }, 20s));
  EXPECT_TRUE(w->Assignment().empty());
  CreateTopic("later", 3);
  ASSERT_TRUE(WaitUntil([&] { return w->Assignment().size() == 3; }, 20s));
  Produce("later", 3, 4);
  ASSERT_TRUE(WaitUntil([&] { return w->RecordCount() >= 12; }, 15s));
}

TEST_F(GroupsClientTest, CommitCommittedPauseResume) {
  CreateTopic("commits", 2);
  Produce("commits", 2, 10);
  auto config = Config("g-commit");
  config.enable_auto_commit = false;
  auto consumer = client::Consumer::Create(config);
  ASSERT_TRUE(consumer.ok());
  auto& c = **consumer;
  ASSERT_TRUE(c.Subscribe({"commits"}).ok());
  std::vector<client::ConsumerRecord> got;
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (got.size() < 20 && std::chrono::steady_clock::now() < end) {
    auto r = c.Poll(200ms);
    ASSERT_TRUE(r.ok()) << r.status();
    got.insert(got.end(), r->begin(), r->end());
  }
  ASSERT_EQ(got.size(), 20u);
  EXPECT_GE(c.Membership().generation, 0);
  const TopicPartition p0{"commits", 0}, p1{"commits", 1};
  EXPECT_EQ(c.Assign({p0}).code(), absl::StatusCode::kFailedPrecondition) << "subscribed";
  ASSERT_TRUE(c.CommitSync().ok());
  auto committed = c.Committed({p0, p1});
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ((*committed)[p0].offset, 10);
  EXPECT_EQ((*committed)[p1].offset, 10);

  // Explicit offsets with metadata, then an async commit whose callback runs
  // in a later call on this thread.
  ASSERT_TRUE(c.CommitSync({{p0, client::OffsetAndMetadata{7, "meta", -1}}}).ok());
  committed = c.Committed({p0});
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ((*committed)[p0].offset, 7);
  EXPECT_EQ((*committed)[p0].metadata, "meta");
  int callbacks = 0;
  absl::Status async_status = absl::UnknownError("not called");
  c.CommitAsync([&](const absl::Status& s) {
    ++callbacks;
    async_status = s;
  });
  EXPECT_EQ(callbacks, 0);
  ASSERT_TRUE(WaitUntil([&] {
    c.Poll(50ms).IgnoreError();
    return callbacks > 0;
  }, 10s));
  EXPECT_EQ(callbacks, 1);
  EXPECT_TRUE(async_status.ok()) << async_status;
  committed = c.Committed({p0});
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ((*committed)[p0].offset, 10);

  // Pause p0: its new records are held back until Resume.
  ASSERT_TRUE(c.Pause({p0}).ok());
  EXPECT_THAT(c.Paused(), ::testing::ElementsAre(p0));
  EXPECT_FALSE(c.Pause({TopicPartition{"commits", 9}}).ok());
  Produce("commits", 2, 5, 10);
  std::vector<client::ConsumerRecord> more;
  const auto end2 = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < end2) {
    auto r = c.Poll(100ms);
    ASSERT_TRUE(r.ok());
    more.insert(more.end(), r->begin(), r->end());
  }
  ASSERT_EQ(more.size(), 5u);
  for (const auto& r : more) EXPECT_EQ(r.partition, 1);
  ASSERT_TRUE(c.Resume({p0}).ok());
  EXPECT_TRUE(c.Paused().empty());
  more.clear();
  const auto end3 = std::chrono::steady_clock::now() + 10s;
  while (more.size() < 5 && std::chrono::steady_clock::now() < end3) {
    auto r = c.Poll(100ms);
    ASSERT_TRUE(r.ok());
    more.insert(more.end(), r->begin(), r->end());
  }
  ASSERT_EQ(more.size(), 5u);
  for (const auto& r : more) EXPECT_EQ(r.partition, 0);
  c.Close();
}

TEST_F(GroupsClientTest, StandaloneCommitAndAssignStartsAtCommitted) {
  CreateTopic("solo", 1);
  Produce("solo", 1, 10);
  const TopicPartition tp{"solo", 0};
  auto config = Config("g-solo");
  {
    auto c = client::Consumer::Create(config);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->Assign({tp}).ok());
    ASSERT_TRUE((*c)->CommitSync({{tp, client::OffsetAndMetadata{4, "", -1}}}).ok());
    auto committed = (*c)->Committed({tp});
    ASSERT_TRUE(committed.ok()) << committed.status();
    EXPECT_EQ((*committed)[tp].offset, 4);
  }
  auto c = client::Consumer::Create(config);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Assign({tp}).ok());
  auto pos = (*c)->Position(tp);
  ASSERT_TRUE(pos.ok()) << pos.status();
  EXPECT_EQ(*pos, 4);
  std::vector<client::ConsumerRecord> got;
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (got.size() < 6 && std::chrono::steady_clock::now() < end) {
    auto r = (*c)->Poll(100ms);
    ASSERT_TRUE(r.ok());
    got.insert(got.end(), r->begin(), r->end());
  }
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got.front().offset, 4);

  // Without a group id there is nothing to commit to.
  auto no_group = Config("");
  auto n = client::Consumer::Create(no_group);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ((*n)->CommitSync({{tp, client::OffsetAndMetadata{1, "", -1}}}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*n)->Subscribe({"solo"}).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace brook::testing
