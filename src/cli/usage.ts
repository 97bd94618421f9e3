// The `ailink` help text: printed by `ailink help`, and after every usage error.

export const USAGE = `ailink — federated learning on decentralized storage

  ailink keys new --out FILE                      create an account (sr25519 + X25519), mode 0600
  ailink dev [--miners 12] [--data-dir ./ailink-data] [--profile production|test] [--allow ADDRESS]...
             [--host ADDR] [--gateway] [--chain WS] [--collect-grace SECONDS]
                                                  run a local network until Ctrl-C, every process bound to ADDR
                                                  (default 127.0.0.1); writes <data-dir>/network.json; the
                                                  operator and each --allow account are funded and get space;
                                                  --gateway: the operator's S3 gateway too (<data-dir>/gateway);
                                                  --chain: on a chain already running (\`ailink chain\`) rather
                                                  than one in this process; --collect-grace: how long its miners
                                                  keep fragments no file places (default 600)
  ailink chain [--port 9944] [--host 127.0.0.1] [--data-dir ./ailink-data/chain] [--heartbeat-ms 3000]
                                                  run the dev chain until Ctrl-C; its blocks persist; an empty
                                                  block when none came for --heartbeat-ms (0: none)
  ailink miner --data-dir DIR [--listen MULTIADDR] [--announce MULTIADDR] [--capacity BYTES]
               [--max-fragment BYTES] [--chain WS [--collateral PLANCKS] [--protocol FILE] [--idle-space BYTES]]
               [--collect-grace SECONDS] [--allow ADDRESS]...
                                                  a storage miner; on a chain it registers, proves and repairs, and
                                                  stores for every account the chain lets store (see \`space\`);
                                                  --allow adds accounts whatever the chain says; anyone may read;
                                                  fragments no file on chain places on it go after --collect-grace
                                                  (default 86400: a day to declare an upload)
  ailink verifier --data-dir DIR --chain WS [--protocol FILE] [--listen MULTIADDR] [--announce MULTIADDR]
                                                  the verifier (TEE role): tags fragments, checks storage proofs
  ailink gateway --data-dir DIR [--network FILE | --chain WS] [--key FILE] [--listen HOST:PORT] [--region NAME]
                 [--domain NAME] [--altda-put-from ADDRESS]... [--altda-max-blob-mib N]
                 [--multipart-staging-max BYTES] [--multipart-expiry-hours N]
                 [--multipart-uploads-max N]
                                                  the account's buckets and objects over S3 (SigV4; path-style, or
                                                  virtual-host as <bucket>.NAME, default localhost) for ordinary
                                                  tools; the OP Stack Alt-DA DA server at URL/altda (puts only from
                                                  loopback and --altda-put-from; $AILINK_ALTDA_TOKEN: puts need that
                                                  bearer); DeOSS's API at URL/deoss (signed by the account); writes
                                                  DIR/gateway.json with the URLs and access key; multipart parts
                                                  staged in DIR/uploads: at most BYTES together (default 16G; K/M/G/T
                                                  suffixes), uploads untouched N hours aborted (default 168)
  ailink store hash FILE [--json] [--profile production|test] [--cess]
                                                  fid, segment and fragment hashes of FILE as \`store put --plain\` stores it
                                                  (offline); --cess: CESS's ids (a small file padded to a whole segment)
  ailink store put FILE [--to READER_KEY]... [--plain] [--name NAME]     prints the fid
  ailink store get FID --out FILE
  ailink store info FID [--json]
  ailink store ls [--json]
  ailink store repair FID
  ailink coordinator [--data-dir DIR] [--listen ADDR] [--announce HOST] [--http-port 8700] [--p2p-port 8701]
                     [--test-data SPEC] [--create-task FILE.json]
                                                  tasks and rounds: HTTP API (OpenAPI at /openapi.json), libp2p round
                                                  traffic, state in DIR/coordinator.sqlite (resumes after a restart);
                                                  both listen on ADDR (default 127.0.0.1), announced as HOST
  ailink participant --chain WS --task ID --key FILE --data SPEC [--coordinator URL] [--wait-coordinator S]
                     [--wait-chain S]
                                                  join a task and train on local data until its last round (the
                                                  coordinator is found through the task's record on chain); SPEC is
                                                  <source>[:<partition>][@seed], e.g. fashion-mnist:dirichlet:0.5:3/10,
                                                  csv:FILE or images:DIR
  ailink space buy GIB [--for ADDRESS] | show [ADDRESS] [--json] | authorize OPERATOR | revoke OPERATOR
                                                  storage space on chain: miners accept uploads from an account
                                                  holding space, or from an operator it authorised
  ailink task create FILE.json --coordinator URL [--json]
                                                  the owner (--key) has its running coordinator create
                                                  a task: model.path stored first; prints the task id
  ailink task list | show ID [--json]             tasks as the chain records them: who may join, endpoint, rounds
  ailink task admit ID ADDRESS… | remove ID ADDRESS… | stop ID
                                                  the owner (--key) changes who may join, or ends the task, on chain
  ailink demo [--participants 10] [--rounds 6] [--model mlp|cnn] [--alpha 0.5] [--epochs 1] [--secagg on|off]
              [--dropout on|off] [--data small|full] [--data-dir DIR] [--json]
  ailink demo --data csv:FILE --label COLUMN [--model PATH/model.json] [--participants N] [--alpha A] …
  ailink demo --data images:DIR --model PATH/model.json [--participants N] [--alpha A] …
              [--dp-noise Z [--dp-clip 1] [--dp-epsilon 10] [--dp-delta 1e-5] [--dp-mechanism central-gaussian|skellam]]
                                                  federated training end to end on loopback: chain, 12 miners,
                                                  verifier, coordinator, organisations with SecAgg and a dropout
  ailink simulate --organisations N [--rounds 3] [--model stand-in[:WEIGHTS]|mlp|cnn|logistic]
                  [--data synthetic[:EXAMPLES]|fashion-mnist-small|fashion-mnist|penguins|seattle-weather]
                  [--alpha A] [--seed S] [--json]
                                                  N (3–1000) virtual organisations and a coordinator in one process,
                                                  through the real round protocol and SecAgg+; chain, storage and
                                                  transport are in-memory twins. Trains a deterministic stand-in
                                                  (default 10000 weights, 100 examples each), or a shipped model on
                                                  each organisation's slice of a shipped dataset (IID, or Dirichlet
                                                  (A) label skew), two at a time; prints seconds per round, accuracy,
                                                  peak memory, a table and one JSON line
  ailink demo storage [--data-dir DIR]            the storage network end to end, on loopback
  ailink audit verify --task ID [--round N] [--max-price PLANCK] [--eval DATA_SPEC] [--json]
                                                  check a task's lineage against the chain: manifests, parents,
                                                  models, commitments, admissions, settings, miners; exit 0 only if
                                                  every check holds, else each finding and where it broke;
                                                  --eval scores every round's model on your own data beside the
                                                  accuracy its manifests claim
  ailink audit report --task ID [--round N] [--max-price PLANCK] [--format html|md|json] [--out FILE]
                                                  the model card: lineage, participants, settings, privacy budget
  ailink audit export --task ID --out FILE [--round N] [--max-price PLANCK]
                                                  audit as verify does, then write one self-contained evidence
                                                  bundle: the chain's blocks (headers + extrinsics), the objects
                                                  read (manifests, spec, models, recompute material), the report
  ailink audit verify --bundle FILE [--expect-tip HASH] [--json]
  ailink audit report --bundle FILE [--expect-tip HASH] [--format html|md|json] [--out FILE]
                                                  the same audit offline, from a bundle: no chain, no miner; the
                                                  card cites the bundle's SHA-256 and the chain tip to compare
  ailink audit serve [--task ID] [--listen HOST:PORT] [--cache-seconds 30] [--max-price PLANCK]
                                                  the lineage explorer from your own view: task list from your own
                                                  index of the chain, badges from your own audit and fetches
                                                  (default 127.0.0.1:8780); nothing comes from the coordinator
  ailink model pull --task ID [--round N] --out DIR [--max-price PLANCK] [--json]
                                                  download a global model, verify it and its lineage against the
                                                  chain, write model.json + weights.bin (TensorFlow.js)
  ailink model access-log --fid FID [--json]       every retrieval of FID recorded on chain: reader, block, paid
  ailink object terms FID [--readers ADDR,...] [--price PLANCK]
                                                  the owner sets who reads FID free and what others pay per request
  ailink object request FID [--max-price PLANCK] [--out FILE]
                                                  ask for FID's key (paying the owner in the same extrinsic), read it
  ailink object serve-keys [--for OWNER,…]        the owner's key service: release keys to accepted requests
                                                  (--for: owners that authorised this account as operator)

Commands that reach the network take --chain ws://HOST:PORT [--protocol FILE] [--state-dir DIR] (indexes and keys
in DIR, default ./ailink-data), or --network FILE (default ./ailink-data/network.json, written by \`ailink dev\`);
and --key FILE (default: the network file's operator key). The long-running roles (coordinator, participant, miner,
verifier) also take --config FILE: a JSON object of their flags, which flags on the command line override.
Exit codes: 0 ok, 1 failed (the error code is printed), 2 bad usage.`;
