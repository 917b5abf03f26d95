// Compiled by `npm test` (tsc -p test/types), never run: what publish()
// accepts at compile time. Each @ts-expect-error line must fail to compile,
// or tsc reports the directive as unused.

import { HeraldClient, type JSONValue } from "../../src/index.js";

declare const client: HeraldClient;

interface ChatMessage {
  text: string;
  author: { name: string; id?: number };
  tags: string[];
  edited?: boolean;
  replyTo: number | null;
}
type Alias = { text: string; at: number };
declare const fromInterface: ChatMessage;
declare const fromAlias: Alias;
declare const anyJSON: JSONValue;
declare const readonlyList: readonly ChatMessage[];

export async function accepted(): Promise<number[]> {
  return Promise.all([
    client.publish("chat", fromInterface),
    client.publish("chat", fromAlias),
    client.publish("chat", anyJSON),
    client.publish("chat", readonlyList),
    client.publish("chat", { text: "hi", n: 1, ok: true, none: null, list: [1, "a"] }),
    client.publish("chat", "plain text"),
    client.publish("chat", 42),
    client.publish("chat", null),
    client.publish<ChatMessage>("chat", { text: "t", author: { name: "a" }, tags: [], replyTo: null }),
  ]);
}

interface WithMethod {
  text: string;
  render(): string;
}
declare const withMethod: WithMethod;

export function refused(): void {
  // @ts-expect-error a function is not JSON
  void client.publish("chat", () => 1);
  // @ts-expect-error a method is not JSON
  void client.publish("chat", withMethod);
  // @ts-expect-error bigint is not JSON
  void client.publish("chat", { n: 1n });
  // @ts-expect-error undefined is not JSON
  void client.publish("chat", undefined);
  // @ts-expect-error a symbol is not JSON
  void client.publish("chat", { s: Symbol("x") });
}
