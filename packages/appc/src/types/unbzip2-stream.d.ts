// unbzip2-stream ships no types (and there is no @types package). It exports one factory that
// returns a classic `through` stream: write() compressed bytes, 'data' events of decompressed
// bytes, 'error' on corrupt or truncated input, 'end' after end().
declare module "unbzip2-stream" {
  import type { Stream } from "node:stream";
  interface Unbzip2Stream extends Stream {
    write(chunk: Uint8Array): boolean;
    end(): void;
    readonly readable: boolean;
  }
  function unbzip2Stream(): Unbzip2Stream;
  export = unbzip2Stream;
}
