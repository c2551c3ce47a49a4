// The Vercel AI SDK (`ai` with `@ai-sdk/openai-compatible`), unchanged, against a running Skylane.
//
//   SKYLANE_BASE_URL=http://127.0.0.1:4200 SKYLANE_MODEL=openai/gpt-4o-mini node tests/clients/vercel_ai.mjs
//
// Prints ONE line of JSON: {"<scenario>": <observations> | {"failed": "<why>"}}; asserted on by
// tests/integration/test_clients_node.py.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { APICallError, generateText, jsonSchema, Output, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const base = process.env.SKYLANE_BASE_URL;
const modelId = process.env.SKYLANE_MODEL;
if (!base || !modelId) {
  console.error("set SKYLANE_BASE_URL and SKYLANE_MODEL");
  process.exit(2);
}
const skylane = createOpenAICompatible({
  name: "skylane",
  baseURL: `${base}/v1`,
  apiKey: process.env.SKYLANE_KEY || "sk-anything",
  includeUsage: true,
  supportsStructuredOutputs: true,
});
const model = skylane(modelId);

const cityInput = jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"] });
// tools the model may call; without `execute` the call is returned to the caller
const declaredTools = {
  get_weather: tool({ description: "Current weather for a city", inputSchema: cityInput }),
  get_time: tool({ description: "Local time in a city", inputSchema: cityInput }),
};

const calls = (toolCalls) => toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input }));
const usageOf = (u) => ({ inputTokens: u?.inputTokens ?? null, outputTokens: u?.outputTokens ?? null,
                          totalTokens: u?.totalTokens ?? null,
                          cachedInputTokens: u?.inputTokenDetails?.cacheReadTokens ?? u?.cachedInputTokens ?? null });

const scenarios = {
  async generateText() {
    const r = await generateText({ model, system: "Be brief.", prompt: "hello vercel", maxRetries: 0 });
    return { text: r.text, finishReason: r.finishReason, usage: usageOf(r.usage),
             responseModel: r.response.modelId };
  },

  async streamText() {
    const r = streamText({ model, prompt: "stream vercel", maxRetries: 0 });
    const pieces = [];
    for await (const piece of r.textStream) pieces.push(piece);
    return { pieces: pieces.length, joined: pieces.join(""), text: await r.text,
             finishReason: await r.finishReason, usage: usageOf(await r.usage) };
  },

  async toolCall() {
    const r = await generateText({ model, prompt: "tool: weather in Paris?", tools: declaredTools, maxRetries: 0 });
    return { finishReason: r.finishReason, toolCalls: calls(r.toolCalls) };
  },

  async toolLoop() {
    // the SDK runs the tool and sends its result back: two requests through the gateway
    const r = await generateText({
      model, prompt: "tool: weather in Paris?", maxRetries: 0, stopWhen: stepCountIs(3),
      tools: { get_weather: tool({ description: "Current weather for a city", inputSchema: cityInput,
                                   execute: async ({ city }) => `cloudy in ${city}` }) },
    });
    return { steps: r.steps.length, text: r.text, finishReason: r.finishReason,
             firstStepCalls: calls(r.steps[0].toolCalls) };
  },

  async streamToolsParallel() {
    const r = streamText({ model, prompt: "tools2 weather and time", tools: declaredTools, maxRetries: 0 });
    const parts = [];
    for await (const part of r.fullStream) parts.push(part.type);
    return { toolCalls: calls(await r.toolCalls), finishReason: await r.finishReason,
             sawToolInputDeltas: parts.includes("tool-input-delta") };
  },

  async structuredOutput() {
    const r = await generateText({ model, prompt: "json: the answer", maxRetries: 0,
                                   output: Output.object({ schema: z.object({ answer: z.number() }) }) });
    return { output: r.output, finishReason: r.finishReason };
  },

  async rateLimited() {
    try {
      await generateText({ model, prompt: "error:429", maxRetries: 0 });
    } catch (e) {
      return { isAPICallError: APICallError.isInstance(e), statusCode: e?.statusCode ?? null,
               isRetryable: e?.isRetryable ?? null, message: String(e?.message ?? e) };
    }
    throw new Error("expected an error, got none");
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
