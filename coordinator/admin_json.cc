// JSON building blocks of the coordinator's admin HTTP pages.
#include "coordinator/admin_json.h"

#include "google/protobuf/util/json_util.h"

namespace brook::coordinator {

google::protobuf::Value NumberValue(double v) {
  google::protobuf::Value out;
  out.set_number_value(v);
  return out;
}

google::protobuf::Value StringValue(const std::string& v) {
  google::protobuf::Value out;
  out.set_string_value(v);
  return out;
}

google::protobuf::Value BoolValue(bool v) {
  google::protobuf::Value out;
  out.set_bool_value(v);
  return out;
}

http::HttpResponse JsonResponse(const google::protobuf::Message& msg) {
  http::HttpResponse resp;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  auto s = google::protobuf::util::MessageToJsonString(msg, &resp.body, options);
  if (!s.ok()) {
    resp.status = 500;
    resp.content_type = "text/plain";
    resp.body = "cannot render JSON";
  }
  return resp;
}

}  // namespace brook::coordinator
