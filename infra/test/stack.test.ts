import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { EventlyStack, settingsFromContext } from '../lib/evently-stack';

const FUNCTIONS = ['events-api', 'outbox-relay', 'read-model-updater', 'auth-api', 'welcome-email', 'jwt-keys', 'analytics', 'notifications', 'search-index'];

/** Placeholder bootstraps: the template, not the binaries, is under test here. */
function fakeAssets(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evently-assets-'));
  for (const name of FUNCTIONS) {
    fs.mkdirSync(path.join(dir, name));
    fs.writeFileSync(path.join(dir, name, 'bootstrap'), '#!/bin/sh\n');
  }
  return dir;
}

function synth(context: Record<string, string> = {}): Template {
  const app = new App({
    outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'evently-cdk-')),
    context: { assetDir: fakeAssets(), ...context },
  });
  const stack = new EventlyStack(app, 'Evently', settingsFromContext(app));
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  // Throws on any AwsSolutions finding that is not acknowledged with a reason.
  app.synth();
  return Template.fromStack(stack);
}

type Resources = Record<string, { Type: string; Properties?: any; Metadata?: any }>;

function resourcesOf(template: Template, type: string): [string, any][] {
  const all = template.toJSON().Resources as Resources;
  return Object.entries(all)
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => [id, r.Properties ?? {}]);
}

/** The logical id a `Fn::GetAtt`/`Ref` points at, if any. */
function refTarget(value: any): string | undefined {
  if (value && typeof value === 'object') {
    if (value.Ref) return value.Ref;
    if (value['Fn::GetAtt']) return value['Fn::GetAtt'][0];
  }
  return undefined;
}

const aws = synth();
const local = synth({ local: 'true' });
const traced = synth({ tracing: 'active' });

describe('the synthesized stack', () => {
  it('passes cdk-nag AwsSolutions in AWS and local mode, with every acknowledgement justified', () => {
    // synth() above would have thrown on an unacknowledged finding.
    const app = new App({ context: { assetDir: fakeAssets() } });
    const stack = new EventlyStack(app, 'Evently', settingsFromContext(app));
    const acks: { id: string; reason: string }[] = [];
    for (const node of stack.node.findAll()) {
      for (const entry of node.node.metadata) {
        if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY) {
          for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
            acks.push({ id, reason });
          }
        }
      }
    }
    assert.ok(acks.length > 0, 'expected acknowledgements to inspect');
    for (const ack of acks) {
      assert.ok(ack.reason && ack.reason.length >= 40, `acknowledgement ${ack.id} needs a real reason`);
    }
  });

  it('gives every queue a dead-letter queue, or is itself a dead-letter or on-failure destination', () => {
    for (const template of [aws, local]) {
      const queues = resourcesOf(template, 'AWS::SQS::Queue');
      const dlqTargets = new Set(queues.map(([, q]) => refTarget(q.RedrivePolicy?.deadLetterTargetArn)).filter(Boolean));
      const onFailure = new Set(
        resourcesOf(template, 'AWS::Lambda::EventSourceMapping')
          .map(([, m]) => refTarget(m.DestinationConfig?.OnFailure?.Destination))
          .filter(Boolean),
      );
      assert.ok(queues.length >= 3);
      for (const [id, q] of queues) {
        const covered = q.RedrivePolicy || dlqTargets.has(id) || onFailure.has(id);
        assert.ok(covered, `queue ${id} has no dead-letter queue`);
        if (q.RedrivePolicy) assert.equal(q.RedrivePolicy.maxReceiveCount, 5, `${id} maxReceiveCount`);
      }
    }
  });

  it('makes every SQS mapping report batch item failures with batches of ten', () => {
    const mappings = resourcesOf(aws, 'AWS::Lambda::EventSourceMapping');
    const sqs = mappings.filter(([, m]) => JSON.stringify(m.EventSourceArn).includes('Queue'));
    assert.ok(sqs.length >= 1);
    for (const [id, m] of sqs) {
      assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures'], id);
      assert.equal(m.BatchSize, 10, id);
    }
  });

  it('keeps each queue visibility timeout at six times its consumer timeout in AWS mode', () => {
    const functions = Object.fromEntries(resourcesOf(aws, 'AWS::Lambda::Function'));
    const queues = Object.fromEntries(resourcesOf(aws, 'AWS::SQS::Queue'));
    for (const [id, m] of resourcesOf(aws, 'AWS::Lambda::EventSourceMapping')) {
      const queueId = refTarget(m.EventSourceArn);
      if (!queueId || !queues[queueId]) continue;
      const fn = functions[refTarget(m.FunctionName)!];
      assert.ok(queues[queueId].VisibilityTimeout >= 6 * fn.Timeout, `${id}: visibility < 6x timeout`);
    }
  });

  it('relays only outbox inserts, with bisect, a retry limit and an on-failure destination', () => {
    const stream = resourcesOf(aws, 'AWS::Lambda::EventSourceMapping').find(([, m]) =>
      JSON.stringify(m.EventSourceArn).includes('StreamArn'),
    );
    assert.ok(stream, 'no stream mapping');
    const [, m] = stream;
    assert.equal(m.BisectBatchOnFunctionError, true);
    assert.ok(m.MaximumRetryAttempts > 0 && m.MaximumRetryAttempts <= 10);
    assert.ok(m.DestinationConfig.OnFailure.Destination);
    assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures']);
    const pattern = JSON.parse(m.FilterCriteria.Filters[0].Pattern);
    assert.deepEqual(pattern, { eventName: ['INSERT'], dynamodb: { NewImage: { entity: { S: ['outbox'] } } } });
  });

  it('subscribes the read-model queue with raw delivery and a filter on type', () => {
    const subs = resourcesOf(aws, 'AWS::SNS::Subscription');
    assert.ok(subs.length >= 1);
    for (const [id, s] of subs.filter(([, s]) => s.Protocol === 'sqs')) {
      assert.equal(s.RawMessageDelivery, true, id);
      assert.ok(Array.isArray(s.FilterPolicy.type) && s.FilterPolicy.type.length > 0, `${id} filter on type`);
    }
  });

  it('grants no IAM action or resource "*" except where the reason is written here', () => {
    // Each entry is a documented exception; anything else with a star fails this test.
    const allowedStar: Record<string, string> = {
      'dynamodb:ListStreams': 'ListStreams has no resource-level permissions (added by the DynamoDB event source).',
      'xray:PutTraceSegments': 'X-Ray actions have no resource-level permissions (added by active tracing).',
      'xray:PutTelemetryRecords': 'X-Ray actions have no resource-level permissions (added by active tracing).',
    };
    for (const template of [aws, local, traced]) {
      for (const [id, policy] of resourcesOf(template, 'AWS::IAM::Policy')) {
        for (const st of policy.PolicyDocument.Statement) {
          const actions: string[] = [].concat(st.Action);
          const resources: any[] = [].concat(st.Resource ?? []);
          for (const action of actions) {
            assert.ok(!action.includes('*') || allowedStar[action], `${id}: wildcard action ${action}`);
          }
          if (resources.includes('*')) {
            for (const action of actions) {
              assert.ok(allowedStar[action], `${id}: ${action} on Resource "*" without a written reason`);
            }
          }
        }
      }
      assert.equal(resourcesOf(template, 'AWS::IAM::ManagedPolicy').length, 0);
      for (const [id, role] of resourcesOf(template, 'AWS::IAM::Role')) {
        assert.equal(role.ManagedPolicyArns, undefined, `${id} uses a managed policy`);
      }
    }
  });

  it('declares tables on demand with point-in-time recovery, a stream and TTL on the outbox', () => {
    const tables = resourcesOf(aws, 'AWS::DynamoDB::GlobalTable');
    assert.equal(tables.length, 5);
    for (const [id, t] of tables) {
      assert.equal(t.BillingMode, 'PAY_PER_REQUEST', id);
      for (const replica of t.Replicas) {
        assert.equal(replica.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled, true, id);
      }
    }
    const listed = tables.filter(([, t]) =>
      (t.GlobalSecondaryIndexes ?? []).some((i: any) => i.IndexName === 'upcoming'),
    );
    assert.equal(listed.length, 2, 'events and read-model tables share the listing index');
    const withTtl = tables.filter(([, t]) => t.TimeToLiveSpecification?.Enabled);
    assert.equal(withTtl.length, 4, 'outbox, failed logins, idempotency records and counted markers expire');
    const events = tables.find(([, t]) => t.StreamSpecification);
    assert.ok(events);
    assert.equal(events[1].StreamSpecification.StreamViewType, 'NEW_IMAGE');
    assert.deepEqual(events[1].TimeToLiveSpecification, { AttributeName: 'expires_at', Enabled: true });
  });

  it('runs every function on arm64 provided.al2023 with explicit memory, timeout and a log group with retention', () => {
    const functions = resourcesOf(aws, 'AWS::Lambda::Function');
    assert.equal(functions.length, FUNCTIONS.length);
    for (const [id, fn] of functions) {
      assert.equal(fn.Runtime, 'provided.al2023', id);
      assert.deepEqual(fn.Architectures, ['arm64'], id);
      assert.ok(fn.MemorySize > 0 && fn.Timeout > 0, id);
      assert.ok(fn.LoggingConfig?.LogGroup, `${id} log group`);
    }
    // The sizes BENCHMARKS.md argues for from measured durations.
    const memory = Object.fromEntries(functions.map(([, fn]) => [String(fn.FunctionName).replace(/^Evently-/, ''), fn.MemorySize]));
    assert.deepEqual(memory, {
      'events-api': 256,
      'auth-api': 1769,
      'outbox-relay': 128,
      'read-model-updater': 128,
      'search-index': 128,
      analytics: 128,
      notifications: 128,
      'welcome-email': 128,
      'jwt-keys': 128,
    });
    for (const [id, lg] of resourcesOf(aws, 'AWS::Logs::LogGroup')) {
      assert.ok(lg.RetentionInDays > 0, `${id} retention`);
    }
    for (const [id, fn] of resourcesOf(local, 'AWS::Lambda::Function')) {
      assert.deepEqual(fn.Architectures, ['x86_64'], `${id}: local mode deploys host builds`);
    }
  });

  it('alarms on every dead-letter queue as soon as it holds a message', () => {
    const alarms = resourcesOf(aws, 'AWS::CloudWatch::Alarm');
    const watched = new Set(alarms.map(([, a]) => refTarget(a.Dimensions?.[0]?.Value)));
    const queues = resourcesOf(aws, 'AWS::SQS::Queue');
    // A queue without a redrive policy is a dead-letter (or on-failure) destination.
    const dlqs = queues.filter(([, q]) => !q.RedrivePolicy);
    assert.ok(dlqs.length >= 2);
    for (const [id] of dlqs) {
      assert.ok(watched.has(id), `no alarm on ${id}`);
    }
    for (const [id, a] of alarms) {
      assert.equal(a.Threshold, 0, id);
      assert.equal(a.ComparisonOperator, 'GreaterThanThreshold', id);
      assert.equal(a.MetricName, 'ApproximateNumberOfMessagesVisible', id);
      assert.ok(a.AlarmActions?.length, `${id} notifies someone`);
    }
  });

  it('routes the API explicitly, throttles the stage and logs access', () => {
    const routes = resourcesOf(aws, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.RouteKey).sort();
    assert.deepEqual(routes, [
      'DELETE /events/{id}',
      'DELETE /events/{id}/rsvp',
      'DELETE /me/follows',
      'GET /.well-known/jwks.json',
      'GET /analytics/daily',
      'GET /events',
      'GET /events/{id}',
      'GET /events/{id}/stats',
      'GET /me',
      'GET /me/preferences',
      'GET /me/rsvps',
      'GET /unsubscribe',
      'PATCH /events/{id}',
      'POST /events',
      'POST /events/{id}/rsvp',
      'POST /login',
      'POST /me/follows',
      'POST /signup',
      'PUT /me/preferences',
    ]);
    const [[, stage]] = resourcesOf(aws, 'AWS::ApiGatewayV2::Stage');
    const login = stage.RouteSettings['POST /login'];
    assert.ok(login.ThrottlingRateLimit < stage.DefaultRouteSettings.ThrottlingRateLimit, 'login is throttled harder');
    assert.ok(stage.DefaultRouteSettings.ThrottlingRateLimit > 0);
    assert.ok(stage.DefaultRouteSettings.ThrottlingBurstLimit > 0);
    assert.ok(stage.AccessLogSettings.DestinationArn);
  });

  it('maps a custom domain only when a domain and a certificate are given', () => {
    assert.equal(resourcesOf(aws, 'AWS::ApiGatewayV2::DomainName').length, 0);
    const withDomain = synth({
      domainName: 'api.example.com',
      certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
    });
    assert.equal(resourcesOf(withDomain, 'AWS::ApiGatewayV2::DomainName').length, 1);
    assert.equal(resourcesOf(withDomain, 'AWS::ApiGatewayV2::ApiMapping').length, 1);
    assert.throws(() => synth({ domainName: 'api.example.com' }), /certificateArn/);
  });

  it('lets only auth-api and the key generator read the signing key secret', () => {
    const [[secretId]] = resourcesOf(aws, 'AWS::SecretsManager::Secret');
    const readers: string[] = [];
    for (const [policyId, policy] of resourcesOf(aws, 'AWS::IAM::Policy')) {
      for (const st of policy.PolicyDocument.Statement) {
        const actions: string[] = [].concat(st.Action);
        if (actions.some((a) => a.startsWith('secretsmanager:')) && JSON.stringify(st.Resource).includes(secretId)) {
          readers.push(policyId);
        }
      }
    }
    assert.deepEqual(readers.map((id) => id.replace(/role.*$/, '')).sort(), ['authapi', 'jwtkeys']);
  });

  it('confines each function to its own idempotency scopes by leading key', () => {
    const [[tableId]] = resourcesOf(aws, 'AWS::DynamoDB::GlobalTable').filter(([id]) => id.startsWith('IdempotencyTable'));
    const scopes: Record<string, string[]> = {};
    for (const [policyId, policy] of resourcesOf(aws, 'AWS::IAM::Policy')) {
      for (const st of policy.PolicyDocument.Statement) {
        if (!JSON.stringify(st.Resource).includes(tableId)) continue;
        const leading = st.Condition?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys'];
        assert.ok(leading, `${policyId} reaches every idempotency record`);
        scopes[policyId.replace(/role.*$/i, '').toLowerCase()] = [].concat(leading);
      }
    }
    assert.deepEqual(scopes, {
      analytics: ['analytics#*'],
      authapi: ['POST /signup#*'],
      eventsapi: ['POST /events#*', 'POST /events/{id}/rsvp#*'],
      readmodelupdater: ['read-model-updater#*'],
      searchindex: ['search-index#*'],
      notifications: ['notifications#*'],
      welcomeemail: ['welcome-email#*'],
    });
  });

  it('gives the read-model consumers only the DynamoDB actions they call on the read model', () => {
    const [[tableId]] = resourcesOf(aws, 'AWS::DynamoDB::GlobalTable').filter(([id]) => id.startsWith('ReadModelTable'));
    const actions: Record<string, string[]> = {};
    for (const [policyId, policy] of resourcesOf(aws, 'AWS::IAM::Policy')) {
      const name = policyId.replace(/role.*$/i, '').toLowerCase();
      if (name !== 'readmodelupdater' && name !== 'searchindex') continue;
      for (const st of policy.PolicyDocument.Statement) {
        if (!JSON.stringify(st.Resource).includes(tableId)) continue;
        actions[name] = [...(actions[name] ?? []), ...[].concat(st.Action)].sort();
      }
    }
    assert.deepEqual(actions, {
      readmodelupdater: ['dynamodb:PutItem'],
      searchindex: ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:PutItem'],
    });
  });

  it('gives notifications only the DynamoDB actions it calls on the users table', () => {
    const [[tableId]] = resourcesOf(aws, 'AWS::DynamoDB::GlobalTable').filter(([id]) => id.startsWith('UsersTable'));
    let actions: string[] = [];
    for (const [policyId, policy] of resourcesOf(aws, 'AWS::IAM::Policy')) {
      if (policyId.replace(/role.*$/i, '').toLowerCase() !== 'notifications') continue;
      for (const st of policy.PolicyDocument.Statement) {
        if (JSON.stringify(st.Resource).includes(tableId)) actions = [...actions, ...[].concat(st.Action)];
      }
    }
    assert.deepEqual(actions.sort(), [
      'dynamodb:BatchGetItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
  });

  it('lets only the mail consumers send mail, each with the one SES action it uses, from the stack identity', () => {
    const senders: Record<string, string[]> = {};
    for (const [policyId, policy] of resourcesOf(aws, 'AWS::IAM::Policy')) {
      for (const st of policy.PolicyDocument.Statement) {
        const actions: string[] = [].concat(st.Action);
        if (!actions.some((a) => a.startsWith('ses:'))) continue;
        assert.match(JSON.stringify(st.Resource), /:identity\//, `${policyId} sends from another resource`);
        senders[policyId.replace(/role.*$/i, '').toLowerCase()] = actions;
      }
    }
    assert.deepEqual(senders, { notifications: ['ses:SendBulkEmail'], welcomeemail: ['ses:SendBulkEmail'] });
  });

  it('gives verifiers the public keys from the key custom resource, never a literal key', () => {
    const [[ringId]] = resourcesOf(aws, 'Custom::JwtKeyRing');
    for (const [id, fn] of resourcesOf(aws, 'AWS::Lambda::Function')) {
      const keys = fn.Environment?.Variables?.JWT_PUBLIC_KEYS;
      if (keys === undefined) continue;
      assert.deepEqual(keys, { 'Fn::GetAtt': [ringId, 'PublicKeys'] }, id);
    }
    const template = JSON.stringify(aws.toJSON());
    assert.ok(!/PRIVATE KEY|private_key/.test(template), 'no private key material in the template');
  });

  it('routes exactly the operations of api/openapi.json', () => {
    const spec = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'api', 'openapi.json'), 'utf8'));
    const documented: string[] = [];
    for (const [route, item] of Object.entries<any>(spec.paths)) {
      for (const method of Object.keys(item).filter((k) => k !== 'parameters')) {
        documented.push(`${method.toUpperCase()} ${route}`);
      }
    }
    const routed = resourcesOf(aws, 'AWS::ApiGatewayV2::Route').map(([, route]) => route.RouteKey as string);
    assert.deepEqual(routed.sort(), documented.sort());
  });

  it('switches X-Ray active tracing on every function with -c tracing=active, and only then', () => {
    const functions = (template: Template) => resourcesOf(template, 'AWS::Lambda::Function').map(([, fn]) => fn);
    for (const fn of functions(traced)) {
      assert.deepEqual(fn.TracingConfig, { Mode: 'Active' });
    }
    for (const fn of functions(aws)) {
      assert.ok(fn.TracingConfig === undefined || fn.TracingConfig.Mode === 'PassThrough', JSON.stringify(fn.TracingConfig));
    }
    assert.throws(() => synth({ tracing: 'sometimes' }), /tracing must be 'active' or 'off'/);
  });

  it('outputs what operators and the tests need', () => {
    const outputs = Object.keys(aws.toJSON().Outputs);
    for (const name of ['ApiUrl', 'EventsTableName', 'ReadModelTableName', 'EventsTopicArn', 'ReadModelQueueUrl', 'ReadModelDlqUrl']) {
      assert.ok(outputs.includes(name), `missing output ${name}`);
    }
  });
});
