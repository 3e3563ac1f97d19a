/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED.
 *
 * To regenerate, run `npx convex dev`.
 * @module
 */

import type {
  ApiFromModules,
  FilterApi,
  FunctionReference,
} from "convex/server";
import type * as artifacts from "../artifacts.js";
import type * as events from "../events.js";
import type * as files from "../files.js";
import type * as lib_auth from "../lib/auth.js";
import type * as lib_contract from "../lib/contract.js";
import type * as lib_errors from "../lib/errors.js";
import type * as lib_events from "../lib/events.js";
import type * as lib_guards from "../lib/guards.js";
import type * as lib_jobRules from "../lib/jobRules.js";
import type * as lib_lifecycle from "../lib/lifecycle.js";
import type * as lib_orders from "../lib/orders.js";
import type * as lib_transitions from "../lib/transitions.js";
import type * as lib_validators from "../lib/validators.js";
import type * as repositories from "../repositories.js";
import type * as runs from "../runs.js";
import type * as sessions from "../sessions.js";
import type * as steps from "../steps.js";
import type * as threads from "../threads.js";
import type * as workOrders from "../workOrders.js";

/**
 * A utility for referencing Convex functions in your app's API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
declare const fullApi: ApiFromModules<{
  artifacts: typeof artifacts;
  events: typeof events;
  files: typeof files;
  "lib/auth": typeof lib_auth;
  "lib/contract": typeof lib_contract;
  "lib/errors": typeof lib_errors;
  "lib/events": typeof lib_events;
  "lib/guards": typeof lib_guards;
  "lib/jobRules": typeof lib_jobRules;
  "lib/lifecycle": typeof lib_lifecycle;
  "lib/orders": typeof lib_orders;
  "lib/transitions": typeof lib_transitions;
  "lib/validators": typeof lib_validators;
  repositories: typeof repositories;
  runs: typeof runs;
  sessions: typeof sessions;
  steps: typeof steps;
  threads: typeof threads;
  workOrders: typeof workOrders;
}>;
export declare const api: FilterApi<
  typeof fullApi,
  FunctionReference<any, "public">
>;
export declare const internal: FilterApi<
  typeof fullApi,
  FunctionReference<any, "internal">
>;
