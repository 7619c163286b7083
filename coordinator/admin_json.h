// JSON building blocks of the coordinator's admin HTTP pages (/admin/topics,
// /admin/cluster, /admin/groups): protobuf Struct values and a message
// rendered as a JSON response.
#pragma once

#include <string>

#include "common/http/admin_server.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace brook::coordinator {

google::protobuf::Value NumberValue(double v);
google::protobuf::Value StringValue(const std::string& v);
google::protobuf::Value BoolValue(bool v);

// `msg` as JSON (field names as in the .proto, default values printed);
// a 500 response if it cannot be rendered.
http::HttpResponse JsonResponse(const google::protobuf::Message& msg);

}  // namespace brook::coordinator
