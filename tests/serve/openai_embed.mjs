// OpenAI's official client against qbert serve: prints the embeddings of
// argv's texts as JSON, asked as floats, as the client's default (base64,
// decoded by the client), and as explicit base64 decoded here.
import OpenAI from "openai";

const [baseURL, apiKey, ...texts] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30000 });
const model = "qbert-test";
const asFloat = await client.embeddings.create({ model, input: texts, encoding_format: "float" });
const asDefault = await client.embeddings.create({ model, input: texts });
const asBase64 = await client.embeddings.create({ model, input: texts, encoding_format: "base64" });
const decode = (s) => {
  const b = Buffer.from(s, "base64");
  return Array.from(new Float32Array(b.buffer, b.byteOffset, b.length / 4));
};
console.log(JSON.stringify({
  model: asFloat.model,
  usage: asFloat.usage,
  float: asFloat.data.map((d) => d.embedding),
  default: asDefault.data.map((d) => d.embedding),
  base64: asBase64.data.map((d) => decode(d.embedding)),
}));
