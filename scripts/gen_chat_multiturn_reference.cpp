// gen_chat_multiturn_reference.cpp — reference generator (NOT part of etok, not built by CMake):
// multi-turn chat template renderings from llama.cpp, written to
// tests/fixtures/reference/chat_template_multiturn.json. Build against a llama.cpp build tree:
//   g++ -std=c++17 -I$L/include -I$L/common -I$L/ggml/include scripts/gen_chat_multiturn_reference.cpp
//       $L/build/common/libcommon.a -L$L/build/bin -lllama -lggml -lggml-base -Wl,-rpath,$L/build/bin -o chatmt
//   ./chatmt models/SmolLM2-135M-Instruct.Q4_1.gguf > tests/fixtures/reference/chat_template_multiturn.json
#include "llama.h"
#include "chat.h"
#include <cstdio>
#include <string>
#include <vector>
#include "json.hpp"
using json = nlohmann::ordered_json;
static void ilog(enum ggml_log_level, const char *, void *) {}
typedef std::vector<std::pair<std::string,std::string>> msgs_t;
static std::string legacy(const char *tmpl, const msgs_t &msgs) {
    std::vector<llama_chat_message> m;
    for (auto &p : msgs) m.push_back({p.first.c_str(), p.second.c_str()});
    std::vector<char> buf(65536);
    int n = llama_chat_apply_template(tmpl, m.data(), m.size(), true, buf.data(), buf.size());
    if (n < 0) return "<error>";
    return std::string(buf.data(), n);
}
int main(int argc, char **argv) {
    llama_log_set(ilog, NULL);
    ggml_backend_load_all();
    auto mp = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    const char *tmpl = llama_model_chat_template(model, nullptr);
    auto tmpls = common_chat_templates_init(model, "");
    std::vector<msgs_t> cases = {
        {{"system","You are terse."},{"user","Hi"},{"assistant","Hello."},{"user","And now?"}},
        {{"user","What is 2+2?"},{"assistant","4"},{"user","Times 3?"}},
        {{"user","  padded  "},{"assistant"," ok "},{"user","x"}},
        {{"user","Hi"},{"system","Now be formal."},{"user","Hello?"}},
    };
    json out = json::array();
    for (auto &ms : cases) {
        std::vector<common_chat_msg> cm;
        for (auto &p : ms) { common_chat_msg m; m.role = p.first; m.content = p.second; cm.push_back(m); }
        common_chat_templates_inputs in; in.messages = cm; in.add_generation_prompt = true; in.use_jinja = true;
        json j, jm = json::array();
        for (auto &p : ms) jm.push_back({{"role", p.first}, {"content", p.second}});
        j["messages"] = jm;
        j["model_template_legacy"] = legacy(tmpl, ms);
        j["model_template_jinja"] = common_chat_templates_apply(tmpls.get(), in).prompt;
        j["chatml_builtin"] = legacy("chatml", ms);
        j["llama3_builtin"] = legacy("llama3", ms);
        out.push_back(j);
    }
    json doc;
    doc["model_chat_template"] = tmpl ? tmpl : "";
    doc["cases"] = out;
    printf("%s\n", doc.dump(1).c_str());
    llama_model_free(model);
}
