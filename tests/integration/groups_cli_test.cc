// Integration tests of `brook group`: the real brook binary run as a
// subprocess against a real brook-server. Groups, members and committed
// offsets are made through the raw native protocol (standalone OffsetCommit,
// JoinGroup + SyncGroup of a static member), independent of the group
// consumer library.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cli_runner.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

using Row = std::vector<std::string>;

// The rows of the table whose header line starts with `first_column`, as
// whitespace-separated cells, up to the next empty line.
std::vector<Row> TableRows(const std::string& out, const std::string& first_column) {
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  std::vector<Row> rows;
  bool in_table = false;
  for (const std::string& line : lines) {
    if (!in_table) {
      in_table = absl::StartsWith(line, first_column + " ");
      continue;
    }
    if (line.empty()) break;
    rows.push_back(absl::StrSplit(line, ' ', absl::SkipEmpty()));
  }
  return rows;
}

// The group names `brook group list` printed.
std::vector<std::string> ListedGroups(const std::string& out) {
  std::vector<std::string> names;
  for (const Row& r : TableRows(out, "GROUP")) names.push_back(r.at(0));
  return names;
}

// One server for the whole suite; each test uses its own topics and groups.
class GroupsCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess();
    start_status_ = server_->Start();
    if (start_status_.ok()) ns_ = server_->nameserver().ToString();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(start_status_.ok()) << start_status_ << "\n" << server_->LogTail();
    auto c = Connect(io_, server_->coordinator());
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *c;
  }

  // `brook --nameserver <ns> args...`
  CliResult Brook(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"--nameserver", ns_});
    return RunCli(args, input);
  }

  // Creates `topic` and sends `counts[p]` records to each partition p.
  void CreateAndFill(const std::string& topic, const std::vector<int>& counts) {
    CliResult created =
        Brook({"topic", "create", topic, "--partitions", std::to_string(counts.size())});
    ASSERT_EQ(created.exit_code, 0) << Describe(created);
    for (size_t p = 0; p < counts.size(); ++p) {
      if (counts[p] > 0) Produce(topic, static_cast<int>(p), counts[p]);
    }
  }

  void Produce(const std::string& topic, int partition, int count) {
    std::string input;
    for (int i = 0; i < count; ++i) absl::StrAppend(&input, "record-", i, "\n");
    CliResult produced =
        Brook({"produce", topic, "--partition", std::to_string(partition), "--acks", "all"}, input);
    ASSERT_EQ(produced.exit_code, 0) << Describe(produced);
  }

  // A standalone commit (generation -1, no member), as a tool or a consumer
  // in assign mode sends it.
  absl::Status Commit(const std::string& group,
                      const std::vector<std::tuple<std::string, int, int64_t>>& offsets,
                      const std::string& metadata = "") {
    proto::OffsetCommitRequest req;
    req.set_group_id(group);
    req.set_generation_id(-1);
    for (const auto& [topic, partition, offset] : offsets) {
      auto* p = req.add_partitions();
      p->set_topic(topic);
      p->set_partition(partition);
      p->set_offset(offset);
      p->set_leader_epoch(-1);
      p->set_metadata(metadata);
    }
    proto::OffsetCommitResponse resp;
    auto r = coordinator_->CallSync(proto::API_OFFSET_COMMIT, 0, req, {}, &resp,
                                    std::chrono::seconds(10));
    if (!r.ok()) return r.status();
    for (const auto& p : resp.partitions()) {
      if (p.error_code() != proto::NONE) {
        return absl::InternalError(absl::StrCat(p.topic(), "-", p.partition(), ": ",
                                                proto::ErrorCode_Name(p.error_code())));
      }
    }
    return absl::OkStatus();
  }

  // The group's committed offset of topic/partition straight from the
  // coordinator (-1: none).
  int64_t Committed(const std::string& group, const std::string& topic, int partition) {
    proto::OffsetFetchRequest req;
    req.set_group_id(group);
    auto* p = req.add_partitions();
    p->set_topic(topic);
    p->set_partition(partition);
    proto::OffsetFetchResponse resp;
    auto r = coordinator_->CallSync(proto::API_OFFSET_FETCH, 0, req, {}, &resp,
                                    std::chrono::seconds(10));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || resp.partitions_size() != 1) return -2;
    return resp.partitions(0).offset();
  }

  static ServerProcess* server_;
  static absl::Status start_status_;
  static std::string ns_;
  rpc::IoThread io_;
  std::shared_ptr<rpc::RpcClient> coordinator_;
};

ServerProcess* GroupsCliTest::server_ = nullptr;
absl::Status GroupsCliTest::start_status_;
std::string GroupsCliTest::ns_;

TEST(GroupsCliUsageTest, BadCommandLinesAreUsageErrors) {
  CliResult help = RunCli({"group", "--help"});
  EXPECT_EQ(help.exit_code, 0) << Describe(help);
  EXPECT_THAT(help.out, HasSubstr("brook group reset-offsets GROUP"));

  const std::vector<std::vector<std::string>> bad = {
      {"group"},
      {"group", "frobnicate"},
      {"group", "describe"},
      {"group", "delete"},
      {"group", "list", "extra"},
      {"group", "reset-offsets", "g", "--topic", "t"},   // no spec
      {"group", "reset-offsets", "g", "--to-earliest"},  // no topics
      {"group", "reset-offsets", "g", "--topic", "t", "--all-topics", "--to-earliest"},
      {"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"},
      {"group", "reset-offsets", "g", "--topic", "t", "--to-offset", "-1"},
      {"group", "reset-offsets", "g", "--topic", "t", "--to-offset", "ten"},
      {"group", "reset-offsets", "g", "--topic", "t:x", "--to-earliest"},
      {"group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"},
      {"group", "reset-offsets", "g", "--topic", "t", "--shift-by"},
  };
  for (const auto& args : bad) {
    CliResult r = RunCli(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    EXPECT_THAT(r.err, HasSubstr("usage:")) << absl::StrJoin(args, " ");
  }
}

TEST_F(GroupsCliTest, ListAndDescribeShowCommittedOffsetsAndLag) {
  // 10 records in partition 0 and 4 in partition 1; 3 and 4 committed.
  ASSERT_NO_FATAL_FAILURE(CreateAndFill("gc-lag", {10, 4}));
  ASSERT_TRUE(Commit("gc-lag-app", {{"gc-lag", 0, 3}, {"gc-lag", 1, 4}}, "note").ok());

  CliResult listed = Brook({"group", "list"});
  ASSERT_EQ(listed.exit_code, 0) << Describe(listed);
  bool found = false;
  for (const Row& r : TableRows(listed.out, "GROUP")) {
    if (r.at(0) != "gc-lag-app") continue;
    found = true;
    EXPECT_THAT(r, ElementsAre("gc-lag-app", "-", "Empty"));
  }
  EXPECT_TRUE(found) << listed.out;

  CliResult listed_json = Brook({"group", "list", "--json"});
  ASSERT_EQ(listed_json.exit_code, 0) << Describe(listed_json);
  EXPECT_THAT(listed_json.out,
              HasSubstr("{\"group\":\"gc-lag-app\",\"protocol_type\":\"\",\"state\":\"Empty\"}"));

  CliResult described = Brook({"group", "describe", "gc-lag-app"});
  ASSERT_EQ(described.exit_code, 0) << Describe(described);
  EXPECT_THAT(described.out, HasSubstr("State: Empty"));
  EXPECT_THAT(described.out, HasSubstr("Members: 0"));
  std::vector<Row> rows = TableRows(described.out, "TOPIC");
  ASSERT_EQ(rows.size(), 2u) << described.out;
  EXPECT_THAT(rows[0], ElementsAre("gc-lag", "0", "3", "10", "7", "-", "-", "-"));
  EXPECT_THAT(rows[1], ElementsAre("gc-lag", "1", "4", "4", "0", "-", "-", "-"));

  // More records raise the lag; a commit lowers it.
  ASSERT_NO_FATAL_FAILURE(Produce("gc-lag", 1, 5));
  ASSERT_TRUE(Commit("gc-lag-app", {{"gc-lag", 0, 8}}).ok());
  CliResult json = Brook({"group", "describe", "gc-lag-app", "--json"});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  EXPECT_THAT(json.out, HasSubstr("\"group\":\"gc-lag-app\",\"state\":\"Empty\""));
  EXPECT_THAT(json.out, HasSubstr("{\"topic\":\"gc-lag\",\"partition\":0,\"committed\":8,"
                                  "\"metadata\":\"\",\"log_end\":10,\"lag\":2,"
                                  "\"member_id\":null"));
  EXPECT_THAT(json.out, HasSubstr("{\"topic\":\"gc-lag\",\"partition\":1,\"committed\":4,"
                                  "\"metadata\":\"note\",\"log_end\":9,\"lag\":5,"
                                  "\"member_id\":null"));
  EXPECT_EQ(json.out.back(), '\n');
  EXPECT_EQ(json.out.find('\n'), json.out.size() - 1) << "one JSON line";
}

TEST_F(GroupsCliTest, UnknownGroupsAreErrors) {
  CliResult described = Brook({"group", "describe", "gc-no-such-group"});
  EXPECT_EQ(described.exit_code, 1) << Describe(described);
  EXPECT_THAT(described.err, HasSubstr("brook: group 'gc-no-such-group' does not exist"));

  CliResult deleted = Brook({"group", "delete", "gc-no-such-group"});
  EXPECT_EQ(deleted.exit_code, 1) << Describe(deleted);
  EXPECT_THAT(deleted.err, HasSubstr("group 'gc-no-such-group' does not exist"));

  // Nothing committed: --all-topics has nothing to act on.
  CliResult reset =
      Brook({"group", "reset-offsets", "gc-no-such-group", "--all-topics", "--to-earliest"});
  EXPECT_EQ(reset.exit_code, 1) << Describe(reset);
  EXPECT_THAT(reset.err, HasSubstr("no committed offsets"));
}

TEST_F(GroupsCliTest, DeleteRemovesGroupsAndTheirOffsets) {
  ASSERT_NO_FATAL_FAILURE(CreateAndFill("gc-del", {3}));
  ASSERT_TRUE(Commit("gc-del-a", {{"gc-del", 0, 2}}).ok());
  ASSERT_TRUE(Commit("gc-del-b", {{"gc-del", 0, 1}}).ok());
  ASSERT_TRUE(Commit("gc-del-keep", {{"gc-del", 0, 3}}).ok());

  CliResult deleted = Brook({"group", "delete", "gc-del-a", "gc-del-b"});
  ASSERT_EQ(deleted.exit_code, 0) << Describe(deleted);
  EXPECT_THAT(deleted.out, HasSubstr("Deleted group gc-del-a."));
  EXPECT_THAT(deleted.out, HasSubstr("Deleted group gc-del-b."));

  CliResult listed = Brook({"group", "list"});
  ASSERT_EQ(listed.exit_code, 0) << Describe(listed);
  EXPECT_THAT(ListedGroups(listed.out), Not(::testing::Contains("gc-del-a")));
  EXPECT_THAT(ListedGroups(listed.out), Not(::testing::Contains("gc-del-b")));
  EXPECT_THAT(ListedGroups(listed.out), ::testing::Contains("gc-del-keep"));
  EXPECT_EQ(Committed("gc-del-a", "gc-del", 0), -1);
  EXPECT_EQ(Committed("gc-del-keep", "gc-del", 0), 3);

  CliResult again = Brook({"group", "describe", "gc-del-a"});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);
  EXPECT_THAT(again.err, HasSubstr("does not exist"));

  // One unknown group among several: the others are still deleted.
  CliResult mixed = Brook({"group", "delete", "gc-del-a", "gc-del-keep"});
  EXPECT_EQ(mixed.exit_code, 1) << Describe(mixed);
  EXPECT_THAT(mixed.err, HasSubstr("group 'gc-del-a' does not exist"));
  EXPECT_THAT(mixed.out, HasSubstr("Deleted group gc-del-keep."));
  EXPECT_EQ(Committed("gc-del-keep", "gc-del", 0), -1);
}

TEST_F(GroupsCliTest, ResetOffsetsDryRunThenExecute) {
  const std::string topic = "gc-reset", group = "gc-reset-app";
  // Five records, then a time T, then five more: T falls on offset 5.
  ASSERT_NO_FATAL_FAILURE(CreateAndFill(topic, {5, 0}));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  const absl::Time t = absl::Now();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_NO_FATAL_FAILURE(Produce(topic, 0, 5));
  ASSERT_NO_FATAL_FAILURE(Produce(topic, 1, 2));
  const std::string datetime = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
  ASSERT_TRUE(Commit(group, {{topic, 0, 7}}).ok());

  // Dry run: prints the plan, changes nothing.
  CliResult dry = Brook({"group", "reset-offsets", group, "--topic", topic, "--to-earliest"});
  ASSERT_EQ(dry.exit_code, 0) << Describe(dry);
  EXPECT_THAT(dry.out, HasSubstr("Dry run: nothing was changed"));
  std::vector<Row> plan = TableRows(dry.out, "TOPIC");
  ASSERT_EQ(plan.size(), 2u) << dry.out;
  EXPECT_THAT(plan[0], ElementsAre(topic, "0", "7", "0", "0", "10"));
  EXPECT_THAT(plan[1], ElementsAre(topic, "1", "-", "0", "0", "2"));
  EXPECT_EQ(Committed(group, topic, 0), 7);
  EXPECT_EQ(Committed(group, topic, 1), -1);

  auto execute = [&](std::vector<std::string> spec) {
    std::vector<std::string> args = {"group", "reset-offsets", group, "--topic", topic + ":0"};
    args.insert(args.end(), spec.begin(), spec.end());
    args.push_back("--execute");
    CliResult r = Brook(args);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(spec, " ") << "\n" << Describe(r);
    EXPECT_THAT(r.out, HasSubstr("Reset the offsets of group " + group + " for 1 partition(s)."));
    return Committed(group, topic, 0);
  };
  EXPECT_EQ(execute({"--to-earliest"}), 0);
  EXPECT_EQ(execute({"--to-latest"}), 10);
  EXPECT_EQ(execute({"--to-offset", "4"}), 4);
  EXPECT_EQ(execute({"--shift-by", "3"}), 7);
  EXPECT_EQ(execute({"--shift-by=-5"}), 2);
  EXPECT_EQ(execute({"--to-datetime", datetime}), 5);
  EXPECT_EQ(execute({"--to-offset", "1000"}), 10);  // clamped to the log end
  EXPECT_EQ(execute({"--shift-by", "-1000"}), 0);   // clamped to the log start
  EXPECT_EQ(Committed(group, topic, 1), -1) << "partition 1 was not selected";

  // A datetime after every record: the log end.
  CliResult future = Brook({"group", "reset-offsets", group, "--topic", topic + ":0",
                            "--to-datetime", "2100-01-01T00:00:00Z"});
  ASSERT_EQ(future.exit_code, 0) << Describe(future);
  plan = TableRows(future.out, "TOPIC");
  ASSERT_EQ(plan.size(), 1u) << future.out;
  EXPECT_THAT(plan[0], ElementsAre(topic, "0", "0", "10", "0", "10"));

  // --all-topics: every committed partition (only partition 0).
  CliResult all =
      Brook({"group", "reset-offsets", group, "--all-topics", "--to-latest", "--execute"});
  ASSERT_EQ(all.exit_code, 0) << Describe(all);
  plan = TableRows(all.out, "TOPIC");
  ASSERT_EQ(plan.size(), 1u) << all.out;
  EXPECT_THAT(plan[0], ElementsAre(topic, "0", "0", "10", "0", "10"));
  EXPECT_EQ(Committed(group, topic, 0), 10);

  // Shifting a partition with nothing committed, a missing partition and an
  // unknown topic are errors that change nothing.
  CliResult shift =
      Brook({"group", "reset-offsets", group, "--topic", topic, "--shift-by", "1", "--execute"});
  EXPECT_EQ(shift.exit_code, 1) << Describe(shift);
  EXPECT_THAT(shift.err, HasSubstr("no committed offset"));
  EXPECT_EQ(Committed(group, topic, 0), 10);
  CliResult missing_partition = Brook(
      {"group", "reset-offsets", group, "--topic", topic + ":0,7", "--to-earliest", "--execute"});
  EXPECT_EQ(missing_partition.exit_code, 1) << Describe(missing_partition);
  EXPECT_THAT(missing_partition.err, HasSubstr("has no partition 7"));
  EXPECT_EQ(Committed(group, topic, 0), 10);
  CliResult unknown_topic = Brook(
      {"group", "reset-offsets", group, "--topic", "gc-never-made", "--to-earliest", "--execute"});
  EXPECT_EQ(unknown_topic.exit_code, 1) << Describe(unknown_topic);
  EXPECT_THAT(unknown_topic.err, HasSubstr("topic 'gc-never-made' does not exist"));

  // A group that does not exist yet gets offsets (it is created), as in Kafka.
  CliResult fresh = Brook({"group", "reset-offsets", "gc-reset-new", "--topic", topic,
                           "--to-offset", "3", "--execute"});
  ASSERT_EQ(fresh.exit_code, 0) << Describe(fresh);
  EXPECT_EQ(Committed("gc-reset-new", topic, 0), 3);
  EXPECT_EQ(Committed("gc-reset-new", topic, 1), 2);  // clamped to its log end
}

TEST_F(GroupsCliTest, LiveMemberIsShownAndBlocksResetAndDelete) {
  const std::string topic = "gc-live", group = "gc-live-app";
  ASSERT_NO_FATAL_FAILURE(CreateAndFill(topic, {6, 2}));
  ASSERT_TRUE(Commit(group, {{topic, 0, 1}, {topic, 1, 2}}).ok());

  // A static member joins (no KIP-394 round trip) and, as leader, assigns
  // itself both partitions.
  proto::ConsumerSubscription sub;
  sub.add_topics(topic);
  proto::JoinGroupRequest join;
  join.set_group_id(group);
  join.set_session_timeout_ms(60000);
  join.set_rebalance_timeout_ms(60000);
  join.set_group_instance_id("instance-1");
  join.set_protocol_type("consumer");
  join.set_client_id("gc-live-client");
  auto* protocol = join.add_protocols();
  protocol->set_name("range");
  protocol->set_metadata(sub.SerializeAsString());
  proto::JoinGroupResponse joined;
  auto jr =
      coordinator_->CallSync(proto::API_JOIN_GROUP, 0, join, {}, &joined, std::chrono::seconds(30));
  ASSERT_TRUE(jr.ok()) << jr.status();
  ASSERT_EQ(joined.leader(), joined.member_id());

  proto::ConsumerAssignment assignment;
  auto* tp = assignment.add_partitions();
  tp->set_topic(topic);
  tp->add_partitions(0);
  tp->add_partitions(1);
  proto::SyncGroupRequest sync;
  sync.set_group_id(group);
  sync.set_generation_id(joined.generation_id());
  sync.set_member_id(joined.member_id());
  sync.set_group_instance_id("instance-1");
  sync.set_protocol_type("consumer");
  sync.set_protocol_name("range");
  auto* a = sync.add_assignments();
  a->set_member_id(joined.member_id());
  a->set_assignment(assignment.SerializeAsString());
  proto::SyncGroupResponse synced;
  auto sr =
      coordinator_->CallSync(proto::API_SYNC_GROUP, 0, sync, {}, &synced, std::chrono::seconds(30));
  ASSERT_TRUE(sr.ok()) << sr.status();
  const std::string member = joined.member_id();

  CliResult described = Brook({"group", "describe", group});
  ASSERT_EQ(described.exit_code, 0) << Describe(described);
  EXPECT_THAT(described.out, HasSubstr("State: Stable"));
  EXPECT_THAT(described.out, HasSubstr("Protocol: consumer/range"));
  EXPECT_THAT(described.out, HasSubstr("Members: 1"));
  EXPECT_THAT(described.out, HasSubstr("Leader: " + member));
  std::vector<Row> rows = TableRows(described.out, "TOPIC");
  ASSERT_EQ(rows.size(), 2u) << described.out;
  ASSERT_EQ(rows[0].size(), 8u) << described.out;
  EXPECT_THAT(Row(rows[0].begin(), rows[0].begin() + 7),
              ElementsAre(topic, "0", "1", "6", "5", member, "gc-live-client"));
  EXPECT_THAT(rows[0][7], HasSubstr("127.0.0.1"));
  EXPECT_THAT(Row(rows[1].begin(), rows[1].begin() + 7),
              ElementsAre(topic, "1", "2", "2", "0", member, "gc-live-client"));

  CliResult members = Brook({"group", "describe", group, "--members"});
  ASSERT_EQ(members.exit_code, 0) << Describe(members);
  rows = TableRows(members.out, "MEMBER");
  ASSERT_EQ(rows.size(), 1u) << members.out;
  ASSERT_EQ(rows[0].size(), 7u) << members.out;
  EXPECT_EQ(rows[0][0], member);
  EXPECT_EQ(rows[0][1], "instance-1");
  EXPECT_EQ(rows[0][2], "gc-live-client");
  EXPECT_EQ(rows[0][4], "2");  // partitions
  EXPECT_EQ(rows[0][5], "5");  // total lag
  EXPECT_EQ(rows[0][6], topic + "(0,1)");

  CliResult json = Brook({"group", "describe", group, "--json"});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  EXPECT_THAT(json.out,
              HasSubstr("\"instance_id\":\"instance-1\",\"client_id\":\"gc-live-client\""));
  EXPECT_THAT(json.out, HasSubstr("\"assignment\":[{\"topic\":\"gc-live\",\"partition\":0},"
                                  "{\"topic\":\"gc-live\",\"partition\":1}],"
                                  "\"subscription\":[\"gc-live\"],\"lag\":5}"));

  // Resetting (even a dry run) and deleting are refused while it is a member.
  for (bool execute : {false, true}) {
    std::vector<std::string> args = {"group",   "reset-offsets", group,
                                     "--topic", topic,           "--to-earliest"};
    if (execute) args.push_back("--execute");
    CliResult refused = Brook(args);
    EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
    EXPECT_THAT(refused.err, HasSubstr("group 'gc-live-app' has 1 active member(s)"));
  }
  EXPECT_EQ(Committed(group, topic, 0), 1);
  CliResult delete_refused = Brook({"group", "delete", group});
  EXPECT_EQ(delete_refused.exit_code, 1) << Describe(delete_refused);
  EXPECT_THAT(delete_refused.err, HasSubstr("group 'gc-live-app' is not empty"));

  // Once the member leaves, the group is Empty and its offsets can be reset.
  proto::LeaveGroupRequest leave;
  leave.set_group_id(group);
  auto* lm = leave.add_members();
  lm->set_member_id(member);
  lm->set_group_instance_id("instance-1");
  proto::LeaveGroupResponse left;
  auto lr =
      coordinator_->CallSync(proto::API_LEAVE_GROUP, 0, leave, {}, &left, std::chrono::seconds(10));
  ASSERT_TRUE(lr.ok()) << lr.status();
  CliResult reset =
      Brook({"group", "reset-offsets", group, "--topic", topic, "--to-latest", "--execute"});
  ASSERT_EQ(reset.exit_code, 0) << Describe(reset);
  EXPECT_EQ(Committed(group, topic, 0), 6);
  EXPECT_EQ(Committed(group, topic, 1), 2);
  CliResult after = Brook({"group", "describe", group});
  ASSERT_EQ(after.exit_code, 0) << Describe(after);
  EXPECT_THAT(after.out, HasSubstr("State: Empty"));
  rows = TableRows(after.out, "TOPIC");
  ASSERT_EQ(rows.size(), 2u) << after.out;
  EXPECT_THAT(rows[0], ElementsAre(topic, "0", "6", "6", "0", "-", "-", "-"));
}

}  // namespace
}  // namespace brook::testing
