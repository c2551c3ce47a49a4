// The OpenAI Node SDK (npm `openai`), unchanged, against a running Skylane.
//
//   SKYLANE_BASE_URL=http://127.0.0.1:4200 SKYLANE_MODEL=openai/gpt-4o-mini node tests/clients/node_sdk.mjs
//
// Runs every scenario and prints ONE line of JSON: {"<scenario>": <observations> | {"failed": "<why>"}}.
// tests/integration/test_clients_node.py runs it and asserts on the observations (so node's own
// output never mixes with pytest's).
import OpenAI from "openai";

const base = process.env.SKYLANE_BASE_URL;
const model = process.env.SKYLANE_MODEL;
if (!base || !model) {
  console.error("set SKYLANE_BASE_URL and SKYLANE_MODEL");
  process.exit(2);
}
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: process.env.SKYLANE_KEY || "sk-anything", maxRetries: 0 });

const TOOLS = [
  { type: "function", function: { name: "get_weather", description: "Current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } },
  { type: "function", function: { name: "get_time", description: "Local time in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } },
];
const user = (text) => [{ role: "user", content: text }];

function errorInfo(e) {
  return {
    class: e?.constructor?.name,
    isAPIError: e instanceof OpenAI.APIError,
    isNotFound: e instanceof OpenAI.NotFoundError,
    isRateLimit: e instanceof OpenAI.RateLimitError,
    isBadRequest: e instanceof OpenAI.BadRequestError,
    isAuthentication: e instanceof OpenAI.AuthenticationError,
    status: e?.status ?? null,
    code: e?.code ?? null,
    param: e?.param ?? null,
    type: e?.type ?? null,
    message: String(e?.message ?? e),
    retryAfter: e?.headers?.get?.("retry-after") ?? null,
  };
}

async function expectError(fn) {
  try {
    await fn();
  } catch (e) {
    return errorInfo(e);
  }
  throw new Error("expected an error, got none");
}

function accumulateToolCalls(chunks) {
  const calls = {};
  for (const ch of chunks) {
    for (const tc of ch.choices[0]?.delta?.tool_calls ?? []) {
      const slot = (calls[tc.index] ??= { id: null, name: null, arguments: "", idDeltas: 0 });
      if (tc.id) { slot.id = tc.id; slot.idDeltas += 1; }
      if (tc.function?.name) slot.name = tc.function.name;
      slot.arguments += tc.function?.arguments ?? "";
    }
  }
  return calls;
}

const scenarios = {
  async chat() {
    const r = await client.chat.completions.create({ model, messages: [
      { role: "system", content: "Be brief." }, { role: "user", content: "hello node" }] });
    return { object: r.object, model: r.model, content: r.choices[0].message.content,
             role: r.choices[0].message.role, finish_reason: r.choices[0].finish_reason, usage: r.usage };
  },

  async chatWithResponse() {
    const { data, response } = await client.chat.completions
      .create({ model, messages: user("headers") }).withResponse();
    return { content: data.choices[0].message.content, status: response.status,
             requestId: response.headers.get("x-request-id"),
             overheadMs: response.headers.get("x-skylane-overhead-ms") };
  },

  async stream() {
    const stream = await client.chat.completions.create({ model, messages: user("stream node"), stream: true,
      stream_options: { include_usage: true } });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    const withChoices = chunks.filter((c) => c.choices.length);
    return {
      text: withChoices.map((c) => c.choices[0].delta.content ?? "").join(""),
      contentPieces: withChoices.filter((c) => c.choices[0].delta.content).length,
      firstRole: withChoices[0]?.choices[0].delta.role ?? null,
      finishReasons: withChoices.map((c) => c.choices[0].finish_reason),
      ids: [...new Set(chunks.map((c) => c.id))].length,
      objects: [...new Set(chunks.map((c) => c.object))],
      models: [...new Set(chunks.map((c) => c.model))],
      lastChoices: chunks.at(-1).choices.length,
      usage: chunks.at(-1).usage ?? null,
    };
  },

  async streamHelper() {
    const runner = client.chat.completions.stream({ model, messages: user("helper node") });
    const pieces = [];
    runner.on("content", (delta) => pieces.push(delta));
    const final = await runner.finalChatCompletion();
    return { content: final.choices[0].message.content, finish_reason: final.choices[0].finish_reason,
             pieces: pieces.length };
  },

  async tools() {
    const messages = user("tool: weather in Paris?");
    const r = await client.chat.completions.create({ model, messages, tools: TOOLS });
    const msg = r.choices[0].message;
    const call = msg.tool_calls[0];
    messages.push(msg, { role: "tool", tool_call_id: call.id, content: "sunny, 24C" });
    const r2 = await client.chat.completions.create({ model, messages, tools: TOOLS });
    return {
      finish_reason: r.choices[0].finish_reason,
      calls: msg.tool_calls.map((c) => ({ id: c.id, type: c.type, name: c.function.name,
                                          args: JSON.parse(c.function.arguments) })),
      answer: r2.choices[0].message.content,
      answerFinish: r2.choices[0].finish_reason,
    };
  },

  async toolsParallel() {
    const r = await client.chat.completions.create({ model, messages: user("tools2 weather and time"), tools: TOOLS });
    return { finish_reason: r.choices[0].finish_reason,
             calls: r.choices[0].message.tool_calls.map((c) => ({ id: c.id, name: c.function.name,
                                                                  args: JSON.parse(c.function.arguments) })) };
  },

  async toolsStream() {
    const stream = await client.chat.completions.create({ model, messages: user("tools2 streamed"), tools: TOOLS,
      stream: true });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    const calls = accumulateToolCalls(chunks);
    return {
      indexes: Object.keys(calls).map(Number),
      calls: Object.values(calls).map((c) => ({ id: c.id, idDeltas: c.idDeltas, name: c.name,
                                                args: JSON.parse(c.arguments) })),
      finish_reason: chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean).at(-1) ?? null,
    };
  },

  async jsonMode() {
    const r = await client.chat.completions.create({ model, messages: user("json please"),
      response_format: { type: "json_object" } });
    return { parsed: JSON.parse(r.choices[0].message.content) };
  },

  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    const one = await client.models.retrieve(model);
    return { ids, retrieved: { id: one.id, object: one.object } };
  },

  async notFound() {
    return expectError(() => client.chat.completions.create({ model: "nosuch/model", messages: user("x") }));
  },

  async badRequest() {
    return expectError(() => client.chat.completions.create({ model, messages: user("x"), temperature: 9 }));
  },

  async rateLimit() {
    return expectError(() => client.chat.completions.create({ model, messages: user("error:429") }));
  },

  async midstream() {
    let seen = "";
    const err = await expectError(async () => {
      const stream = await client.chat.completions.create({ model, messages: user("midstream"), stream: true });
      for await (const ch of stream) seen += ch.choices[0]?.delta?.content ?? "";
    });
    return { seen, error: err };
  },
};

const only = process.env.SKYLANE_SCENARIOS ? process.env.SKYLANE_SCENARIOS.split(",") : Object.keys(scenarios);
const out = {};
for (const name of only) {
  try {
    out[name] = await scenarios[name]();
  } catch (e) {
    out[name] = { failed: `${e?.constructor?.name}: ${e?.message ?? e}` };
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
