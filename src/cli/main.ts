import { requireLittleEndian } from '../shared/bytes.ts';
import { hasCode } from '../shared/errors.ts';
import { usageError } from './args.ts';
import { auditCommand, modelCommand } from './audit.ts';
import { chainCommand } from './chain.ts';
import { coordinatorCommand } from './coordinator.ts';
import { demoCommand } from './demo.ts';
import { devCommand } from './dev.ts';
import { gatewayCommand } from './gateway.ts';
import { keysCommand } from './keys.ts';
import { modelAccessLogCommand, objectCommand } from './market.ts';
import { minerCommand } from './miner.ts';
import { participantCommand } from './participant.ts';
import { simulateCommand } from './simulate.ts';
import { spaceCommand } from './space.ts';
import { storeCommand } from './store.ts';
import { taskCommand } from './task.ts';
import { USAGE } from './usage.ts';
import { verifierCommand } from './verifier.ts';

/**
 * The `ailink` command. The only place that reads argv and the environment; every subcommand composes the modules
 * with real dependencies (system clock, crypto randomness) and prints human text, or JSON with --json.
 */
async function main(argv: string[]): Promise<void> {
  requireLittleEndian();
  const [command, ...rest] = argv;
  switch (command) {
    case 'keys':
      return keysCommand(rest);
    case 'miner':
      return minerCommand(rest);
    case 'chain':
      return chainCommand(rest);
    case 'verifier':
      return verifierCommand(rest);
    case 'gateway':
      return gatewayCommand(rest);
    case 'dev':
      return devCommand(rest);
    case 'store':
      return storeCommand(rest);
    case 'demo':
      return demoCommand(rest);
    case 'coordinator':
      return coordinatorCommand(rest);
    case 'participant':
      return participantCommand(rest);
    case 'task':
      return taskCommand(rest);
    case 'space':
      return spaceCommand(rest);
    case 'simulate':
      return simulateCommand(rest);
    case 'audit':
      return auditCommand(rest);
    case 'model':
      return rest[0] === 'access-log' ? modelAccessLogCommand(rest.slice(1)) : modelCommand(rest);
    case 'object':
      return objectCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      usageError(`unknown command ${JSON.stringify(command)}`);
  }
}

// `ailink … | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

try {
  await main(process.argv.slice(2));
  process.exit(0);
} catch (err) {
  if (hasCode(err)) {
    console.error(`error ${err.code}: ${err.message}`);
    process.exit(err.code === 'INVALID_INPUT' ? 2 : 1);
  }
  if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    console.error(`error INVALID_INPUT: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
}
