// What phoenix.js 1.8 has and @types/phoenix 1.6.7 does not declare.
import "phoenix";

declare module "phoenix" {
  interface Channel {
    joinRef(): string;
  }
  interface Socket {
    channels: Channel[];
  }
}
