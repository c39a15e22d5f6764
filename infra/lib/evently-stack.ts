import * as path from 'path';
import { CfnOutput, CustomResource, Duration, RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import { CfnStage, CorsHttpMethod, DomainName, HttpApi, HttpMethod, HttpStage, LogGroupLogDestination } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Certificate } from 'aws-cdk-lib/aws-certificatemanager';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { AttributeType, StreamViewType, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Effect, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import {
  Architecture,
  Code,
  FilterCriteria,
  FilterRule,
  Function as LambdaFunction,
  Runtime,
  StartingPosition,
  Tracing,
} from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq, SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { EmailIdentity, Identity } from 'aws-cdk-lib/aws-ses';
import { SubscriptionFilter, Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription, SqsSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The event types each consumer subscribes to; the filter policy is built from this. */
export const EVENT_CREATED = 'evently.event.created.v1';
export const USER_CREATED = 'evently.user.created.v1';
export const EVENT_UPDATED = 'evently.event.updated.v1';
export const EVENT_CANCELLED = 'evently.event.cancelled.v1';
export const RSVP_CREATED = 'evently.rsvp.created.v1';
export const RSVP_CANCELLED = 'evently.rsvp.cancelled.v1';

/** Everything the stack reads from CDK context (`-c key=value` or cdk.json). */
export interface EventlySettings extends StackProps {
  readonly stackName: string;
  /** Local mode: host (x86_64) binaries for the emulator, short timeouts, everything destroyable. */
  readonly local: boolean;
  /** Folder holding one `<function>/bootstrap` per function. */
  readonly assetDir: string;
  /** Bump to rotate the token signing key on the next deploy (the previous key stays valid). */
  readonly jwtKeyGeneration: string;
  readonly jwtIssuer: string;
  readonly jwtAudience: string;
  readonly logLevel: string;
  readonly domainName?: string;
  readonly certificateArn?: string;
  readonly alarmEmail?: string;
  /** The SES identity welcome mail is sent from. */
  readonly mailFrom: string;
  readonly tokenTtlSeconds: string;
  /** Comma-separated addresses whose tokens carry the admin role. */
  readonly adminEmails?: string;
  /** X-Ray active tracing on every function (`-c tracing=active`); off by default (cost). */
  readonly tracing: boolean;
}

export function settingsFromContext(scope: Construct): EventlySettings {
  const ctx = (key: string): string | undefined => {
    const value = scope.node.tryGetContext(key);
    return value === undefined || value === '' ? undefined : String(value);
  };
  const local = ctx('local') === 'true';
  const domainName = ctx('domainName');
  const certificateArn = ctx('certificateArn');
  if ((domainName === undefined) !== (certificateArn === undefined)) {
    throw new Error('context domainName and certificateArn go together: give both or neither');
  }
  const root = path.join(__dirname, '..', '..');
  return {
    stackName: ctx('stackName') ?? 'Evently',
    local,
    assetDir: ctx('assetDir') ?? path.join(root, 'target', local ? 'lambda-local' : 'lambda'),
    jwtKeyGeneration: ctx('jwtKeyGeneration') ?? '1',
    jwtIssuer: ctx('jwtIssuer') ?? 'https://auth.evently.local',
    jwtAudience: ctx('jwtAudience') ?? 'evently-api',
    logLevel: ctx('logLevel') ?? 'info',
    domainName,
    certificateArn,
    alarmEmail: ctx('alarmEmail'),
    mailFrom: ctx('mailFrom') ?? 'welcome@evently.local',
    tokenTtlSeconds: ctx('tokenTtlSeconds') ?? '900',
    adminEmails: ctx('adminEmails'),
    tracing: (() => {
      const tracing = ctx('tracing') ?? 'off';
      if (tracing !== 'active' && tracing !== 'off') {
        throw new Error(`context tracing must be 'active' or 'off', not '${tracing}'`);
      }
      return tracing === 'active';
    })(),
  };
}

/** Per-function sizing. Rust on arm64 needs little memory; timeouts bound runaway calls. */
interface FunctionSpec {
  readonly name: string;
  readonly memoryMb: number;
  readonly timeout: Duration;
  readonly environment: Record<string, string>;
}

/** A queue consumer: its queue, the dead-letter queue behind it and the alarm on that DLQ. */
export interface Consumer {
  readonly fn: LambdaFunction;
  readonly queue: Queue;
  readonly dlq: Queue;
}

export class EventlyStack extends Stack {
  readonly api: HttpApi;

  constructor(scope: Construct, id: string, private readonly settings: EventlySettings) {
    super(scope, id, settings);
    const removalPolicy = settings.local ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    // ---- Tables ------------------------------------------------------------------------
    // Both tables share one layout (pk/sk, sparse `upcoming` index of public events by start)
    // so GET /events can fall back from the read model to the events table.
    const tableProps = {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      globalSecondaryIndexes: [
        {
          indexName: 'upcoming',
          partitionKey: { name: 'list_pk', type: AttributeType.STRING },
          sortKey: { name: 'list_sk', type: AttributeType.STRING },
        },
      ],
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: !settings.local,
      removalPolicy,
    };
    const eventsTable = new TableV2(this, 'EventsTable', {
      ...tableProps,
      globalSecondaryIndexes: [
        ...tableProps.globalSecondaryIndexes,
        // RSVPs by user, newest first, for GET /me/rsvps.
        {
          indexName: 'by_user',
          partitionKey: { name: 'user_pk', type: AttributeType.STRING },
          sortKey: { name: 'user_sk', type: AttributeType.STRING },
        },
      ],
      // The outbox lives here; its items expire by themselves once relayed.
      timeToLiveAttribute: 'expires_at',
      dynamoStream: StreamViewType.NEW_IMAGE,
    });
    const readModelTable = new TableV2(this, 'ReadModelTable', tableProps);
    // Profiles by id, credentials by email (the conditional put that keeps emails unique),
    // failed-login counts that expire by TTL.
    const usersTable = new TableV2(this, 'UsersTable', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      timeToLiveAttribute: 'expires_at',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: !settings.local,
      removalPolicy,
    });
    // Exactly-once side effects of consumers and Idempotency-Key replays of HTTP writes;
    // records expire by TTL (checked in code too).
    const idempotencyTable = new TableV2(this, 'IdempotencyTable', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      timeToLiveAttribute: 'expires_at',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Each function reaches only the records of its own scopes (`pk` = `<scope>#<key>`).
    const idempotencyAccess = (...scopes: string[]) =>
      new PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        resources: [idempotencyTable.tableArn],
        conditions: {
          'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': scopes.map((scope) => `${scope}#*`) },
        },
      });

    // ---- Messaging ---------------------------------------------------------------------
    const topic = new Topic(this, 'DomainEvents', { enforceSSL: true });
    Validations.of(topic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'SNS only holds messages in transit; every subscribed queue is encrypted at rest (SSE-SQS). ' +
        'A KMS key on the topic would add a KMS call to every publish for no at-rest gain.',
    });

    const alarmTopic = new Topic(this, 'OperatorAlarms', { enforceSSL: true });
    Validations.of(alarmTopic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason: 'Alarm notifications carry only alarm names and states, no data.',
    });
    if (settings.alarmEmail) {
      alarmTopic.addSubscription(new EmailSubscription(settings.alarmEmail));
    }

    // Counters, and a marker per counted envelope (expiring by TTL) for exactly-once counting.
    const analyticsTable = new TableV2(this, 'AnalyticsTable', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      timeToLiveAttribute: 'expires_at',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy,
    });

    // ---- Token keys --------------------------------------------------------------------
    // The key ring is generated at deploy time by the jwt-keys custom resource and kept in this
    // secret; only the public keys come back into the template, for the verifying functions.
    const keySecret = new Secret(this, 'JwtKeySecret', {
      description: 'Evently token signing keys (current and previous Ed25519 key pairs)',
      removalPolicy: settings.local ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
    Validations.of(keySecret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'Rotation is a deploy (bump context jwtKeyGeneration): the verifying functions receive the new ' +
        'public keys in the same deployment, which a Secrets Manager rotation schedule could not do.',
    });
    const jwtKeys = this.rustFunction({
      name: 'jwt-keys',
      memoryMb: 128,
      timeout: Duration.seconds(30),
      environment: { JWT_KEY_SECRET_ID: keySecret.secretArn },
    });
    jwtKeys.addToRolePolicy(
      new PolicyStatement({
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
        resources: [keySecret.secretArn],
      }),
    );
    const keyRing = new CustomResource(this, 'JwtKeyRing', {
      serviceToken: jwtKeys.functionArn,
      resourceType: 'Custom::JwtKeyRing',
      properties: { Generation: settings.jwtKeyGeneration },
    });
    const jwtEnvironment = {
      JWT_PUBLIC_KEYS: keyRing.getAttString('PublicKeys'),
      JWT_ISSUER: settings.jwtIssuer,
      JWT_AUDIENCE: settings.jwtAudience,
    };

    // ---- Functions ---------------------------------------------------------------------

    const eventsApi = this.rustFunction({
      name: 'events-api',
      memoryMb: 256,
      timeout: Duration.seconds(10),
      environment: {
        EVENTS_TABLE: eventsTable.tableName,
        READ_MODEL_TABLE: readModelTable.tableName,
        ANALYTICS_TABLE: analyticsTable.tableName,
        IDEMPOTENCY_TABLE: idempotencyTable.tableName,
        ...jwtEnvironment,
      },
    });
    eventsApi.addToRolePolicy(idempotencyAccess('POST /events', 'POST /events/{id}/rsvp'));
    eventsApi.addToRolePolicy(
      new PolicyStatement({ actions: ['dynamodb:GetItem', 'dynamodb:Query'], resources: [analyticsTable.tableArn] }),
    );
    // Transaction entries need the matching item actions (Put, Update, Delete: RSVPs only).
    eventsApi.addToRolePolicy(
      new PolicyStatement({
        actions: [
          'dynamodb:GetItem',
          'dynamodb:BatchGetItem',
          'dynamodb:Query',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
        ],
        resources: [
          eventsTable.tableArn,
          `${eventsTable.tableArn}/index/upcoming`,
          `${eventsTable.tableArn}/index/by_user`,
        ],
      }),
    );
    // The read model's base table also holds the search entries (queried by partition).
    eventsApi.addToRolePolicy(
      new PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'],
        resources: [readModelTable.tableArn, `${readModelTable.tableArn}/index/upcoming`],
      }),
    );

    const relay = this.rustFunction({
      name: 'outbox-relay',
      memoryMb: 128,
      timeout: Duration.seconds(settings.local ? 5 : 30),
      environment: { EVENTS_TOPIC_ARN: topic.topicArn },
    });
    topic.grantPublish(relay);
    const relayFailures = this.deadLetterQueue('RelayFailures');
    relay.addEventSource(
      new DynamoEventSource(eventsTable, {
        startingPosition: StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        bisectBatchOnError: true,
        retryAttempts: 10,
        maxRecordAge: Duration.hours(24),
        reportBatchItemFailures: true,
        onFailure: new SqsDlq(relayFailures),
        // Only outbox inserts reach the relay; it checks again itself.
        filters: [
          FilterCriteria.filter({
            eventName: FilterRule.isEqual('INSERT'),
            dynamodb: { NewImage: { entity: { S: FilterRule.isEqual('outbox') } } },
          }),
        ],
      }),
    );
    this.alarmOnDepth('RelayFailures', relayFailures, alarmTopic);

    const readModelUpdater = this.consumer(
      'read-model-updater',
      [EVENT_CREATED, EVENT_UPDATED, EVENT_CANCELLED],
      { READ_MODEL_TABLE: readModelTable.tableName, IDEMPOTENCY_TABLE: idempotencyTable.tableName },
      topic,
      alarmTopic,
    );
    readModelUpdater.fn.addToRolePolicy(
      new PolicyStatement({ actions: ['dynamodb:PutItem'], resources: [readModelTable.tableArn] }),
    );
    readModelUpdater.fn.addToRolePolicy(idempotencyAccess('read-model-updater'));

    const authApi = this.rustFunction({
      name: 'auth-api',
      // A full vCPU (1 769 MB): login is one Argon2id verification, pure CPU (29 ms on one
      // core, `make bench-warm`), so below a vCPU it stretches in proportion. At 512 MB a login
      // would take 2.7x longer for 21 % less money per login (BENCHMARKS.md, "Memory per
      // function").
      memoryMb: 1769,
      timeout: Duration.seconds(10),
      environment: {
        USERS_TABLE: usersTable.tableName,
        EVENTS_TABLE: eventsTable.tableName,
        JWT_KEY_SECRET_ID: keySecret.secretArn,
        IDEMPOTENCY_TABLE: idempotencyTable.tableName,
        TOKEN_TTL_SECONDS: settings.tokenTtlSeconds,
        ...(settings.adminEmails ? { ADMIN_EMAILS: settings.adminEmails } : {}),
        ...jwtEnvironment,
      },
    });
    authApi.addToRolePolicy(
      new PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        resources: [usersTable.tableArn],
      }),
    );
    // The auth API writes only outbox items into the events table.
    authApi.addToRolePolicy(
      new PolicyStatement({
        actions: ['dynamodb:PutItem'],
        resources: [eventsTable.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['OUTBOX#*'] } },
      }),
    );
    authApi.addToRolePolicy(
      new PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [keySecret.secretArn] }),
    );
    authApi.addToRolePolicy(idempotencyAccess('POST /signup'));

    const searchIndex = this.consumer(
      'search-index',
      [EVENT_CREATED, EVENT_UPDATED, EVENT_CANCELLED],
      { READ_MODEL_TABLE: readModelTable.tableName, IDEMPOTENCY_TABLE: idempotencyTable.tableName },
      topic,
      alarmTopic,
    );
    searchIndex.fn.addToRolePolicy(idempotencyAccess('search-index'));
    searchIndex.fn.addToRolePolicy(
      // A batch's manifests are read in one BatchGetItem and its entries written in
      // BatchWriteItem chunks; each manifest is a Put in the transaction with its record.
      new PolicyStatement({
        actions: ['dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:PutItem'],
        resources: [readModelTable.tableArn],
      }),
    );

    const analytics = this.consumer(
      'analytics',
      [EVENT_CREATED, USER_CREATED, RSVP_CREATED, RSVP_CANCELLED],
      { ANALYTICS_TABLE: analyticsTable.tableName, IDEMPOTENCY_TABLE: idempotencyTable.tableName },
      topic,
      alarmTopic,
    );
    analytics.fn.addToRolePolicy(idempotencyAccess('analytics'));
    analytics.fn.addToRolePolicy(
      // Counters only move (ADD), in the transaction that writes the envelope's record.
      new PolicyStatement({ actions: ['dynamodb:UpdateItem'], resources: [analyticsTable.tableArn] }),
    );

    const notifications = this.consumer(
      'notifications',
      [EVENT_CREATED, EVENT_UPDATED, EVENT_CANCELLED],
      {
        EVENTS_TABLE: eventsTable.tableName,
        USERS_TABLE: usersTable.tableName,
        IDEMPOTENCY_TABLE: idempotencyTable.tableName,
        MAIL_FROM: settings.mailFrom,
      },
      topic,
      alarmTopic,
    );
    // Attendees (RSVP items) are read from the events table; followers, profiles, preferences
    // and unsubscribe tokens from the users table.
    notifications.fn.addToRolePolicy(
      new PolicyStatement({ actions: ['dynamodb:Query'], resources: [eventsTable.tableArn] }),
    );
    notifications.fn.addToRolePolicy(
      new PolicyStatement({
        // A round's settings and an attendee page's profiles in one BatchGetItem; GetItem for
        // the token a racing first mail made.
        actions: ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        resources: [usersTable.tableArn],
      }),
    );
    notifications.fn.addToRolePolicy(idempotencyAccess('notifications'));

    const sender = new EmailIdentity(this, 'MailSender', { identity: Identity.email(settings.mailFrom) });
    const welcomeEmail = this.consumer(
      'welcome-email',
      [USER_CREATED],
      { IDEMPOTENCY_TABLE: idempotencyTable.tableName, MAIL_FROM: settings.mailFrom },
      topic,
      alarmTopic,
    );
    welcomeEmail.fn.addToRolePolicy(idempotencyAccess('welcome-email'));
    // From the stack's identity only: both send a batch's mails in bulk sends, their templates
    // inline, so no template resource.
    const senderArn = `arn:${this.partition}:ses:${this.region}:${this.account}:identity/${sender.emailIdentityName}`;
    for (const mailer of [welcomeEmail, notifications]) {
      mailer.fn.addToRolePolicy(new PolicyStatement({ actions: ['ses:SendBulkEmail'], resources: [senderArn] }));
    }

    // ---- HTTP API ----------------------------------------------------------------------
    this.api = new HttpApi(this, 'Api', {
      description: 'Evently public API',
      createDefaultStage: false,
      corsPreflight: {
        allowOrigins: ['*'],
        allowMethods: [
          CorsHttpMethod.GET,
          CorsHttpMethod.POST,
          CorsHttpMethod.PATCH,
          CorsHttpMethod.PUT,
          CorsHttpMethod.DELETE,
          CorsHttpMethod.OPTIONS,
        ],
        allowHeaders: ['authorization', 'content-type', 'x-correlation-id', 'idempotency-key', 'if-match'],
        exposeHeaders: ['location', 'x-correlation-id', 'x-read-source', 'etag'],
        maxAge: Duration.hours(1),
      },
    });
    const domainName =
      settings.domainName && settings.certificateArn
        ? new DomainName(this, 'ApiDomain', {
            domainName: settings.domainName,
            certificate: Certificate.fromCertificateArn(this, 'ApiCertificate', settings.certificateArn),
          })
        : undefined;
    const accessLogs = new LogGroup(this, 'ApiAccessLogs', {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: 100, burstLimit: 200 },
      accessLogSettings: { destination: new LogGroupLogDestination(accessLogs) },
      domainMapping: domainName ? { domainName } : undefined,
    });
    const eventsIntegration = new HttpLambdaIntegration('EventsApi', eventsApi);
    this.api.addRoutes({ path: '/events', methods: [HttpMethod.GET, HttpMethod.POST], integration: eventsIntegration });
    this.api.addRoutes({
      path: '/events/{id}',
      methods: [HttpMethod.GET, HttpMethod.PATCH, HttpMethod.DELETE],
      integration: eventsIntegration,
    });
    this.api.addRoutes({
      path: '/events/{id}/rsvp',
      methods: [HttpMethod.POST, HttpMethod.DELETE],
      integration: eventsIntegration,
    });
    this.api.addRoutes({ path: '/me/rsvps', methods: [HttpMethod.GET], integration: eventsIntegration });
    this.api.addRoutes({ path: '/events/{id}/stats', methods: [HttpMethod.GET], integration: eventsIntegration });
    this.api.addRoutes({ path: '/analytics/daily', methods: [HttpMethod.GET], integration: eventsIntegration });
    const authIntegration = new HttpLambdaIntegration('AuthApi', authApi);
    this.api.addRoutes({ path: '/signup', methods: [HttpMethod.POST], integration: authIntegration });
    this.api.addRoutes({ path: '/login', methods: [HttpMethod.POST], integration: authIntegration });
    this.api.addRoutes({ path: '/me', methods: [HttpMethod.GET], integration: authIntegration });
    this.api.addRoutes({
      path: '/me/follows',
      methods: [HttpMethod.POST, HttpMethod.DELETE],
      integration: authIntegration,
    });
    this.api.addRoutes({
      path: '/me/preferences',
      methods: [HttpMethod.GET, HttpMethod.PUT],
      integration: authIntegration,
    });
    this.api.addRoutes({ path: '/unsubscribe', methods: [HttpMethod.GET], integration: authIntegration });
    const publicUrl = domainName ? `https://${settings.domainName}` : this.api.apiEndpoint;
    notifications.fn.addEnvironment('UNSUBSCRIBE_URL', `${publicUrl}/unsubscribe`);
    this.api.addRoutes({ path: '/.well-known/jwks.json', methods: [HttpMethod.GET], integration: authIntegration });
    // Login is the brute-force target: a tighter limit than the stage default, per route.
    (stage.node.defaultChild as CfnStage).routeSettings = {
      'POST /login': { ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20 },
    };
    Validations.of(this.api).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason:
        'Write routes verify an EdDSA JWT in the function (shared TokenVerifier: algorithm pinned, ' +
        'iss/aud/exp/nbf checked); read routes are public by design. An API Gateway JWT authorizer ' +
        'needs an OIDC discovery document, which the token issuer does not publish yet.',
    });

    // ---- Outputs -----------------------------------------------------------------------
    const out = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    out('ApiUrl', domainName ? `https://${settings.domainName}` : stage.url, 'Base URL of the HTTP API');
    out('ApiId', this.api.apiId, 'HTTP API id (for the emulator path form /_aws/execute-api/<id>/)');
    out('EventsTableName', eventsTable.tableName, 'System of record and outbox');
    out('ReadModelTableName', readModelTable.tableName, 'Projections served by GET /events');
    out('EventsTopicArn', topic.topicArn, 'Domain event topic');
    out('AlarmTopicArn', alarmTopic.topicArn, 'Operator alarm notifications');
    out('ReadModelQueueUrl', readModelUpdater.queue.queueUrl, 'read-model-updater queue');
    out('ReadModelDlqUrl', readModelUpdater.dlq.queueUrl, 'read-model-updater dead-letter queue');
    out('RelayFailureQueueUrl', relayFailures.queueUrl, 'Stream records the relay gave up on');
    out('UsersTableName', usersTable.tableName, 'Profiles, credentials, failed-login counts');
    out('IdempotencyTableName', idempotencyTable.tableName, 'Consumer idempotency records');
    out('JwtKeySecretArn', keySecret.secretArn, 'Token signing key ring (readable by auth-api only)');
    out('WelcomeEmailQueueUrl', welcomeEmail.queue.queueUrl, 'welcome-email queue');
    out('WelcomeEmailDlqUrl', welcomeEmail.dlq.queueUrl, 'welcome-email dead-letter queue');
    out('MailFrom', settings.mailFrom, 'Sender identity of welcome mail');
    out('AnalyticsTableName', analyticsTable.tableName, 'Counters');
    out('AnalyticsQueueUrl', analytics.queue.queueUrl, 'analytics queue');
    out('AnalyticsFunctionName', analytics.fn.functionName, 'analytics function');
    out('NotificationsFunctionName', notifications.fn.functionName, 'notifications function');
    out('SearchIndexFunctionName', searchIndex.fn.functionName, 'search-index function');
    out('AuthApiFunctionName', authApi.functionName, 'auth-api function');
    out('WelcomeEmailFunctionName', welcomeEmail.fn.functionName, 'welcome-email function');
    out('EventsApiFunctionName', eventsApi.functionName, 'events-api function');
    out('OutboxRelayFunctionName', relay.functionName, 'outbox-relay function');
    out('ReadModelUpdaterFunctionName', readModelUpdater.fn.functionName, 'read-model-updater function');
    out('JwtKeysFunctionName', jwtKeys.functionName, 'jwt-keys function (the key ring custom resource)');
  }

  /**
   * A function from a prebuilt `bootstrap`: `cargo lambda build --release --arm64` for AWS,
   * a host build in local mode (the emulator runs bootstraps as host processes).
   */
  private rustFunction(spec: FunctionSpec): LambdaFunction {
    const functionName = `${this.stackName}-${spec.name}`;
    const logGroup = new LogGroup(this, `${spec.name}-logs`, {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Our own role instead of the managed AWSLambdaBasicExecutionRole: it may write to this
    // function's log group and nothing else.
    const role = new Role(this, `${spec.name}-role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of ${functionName}`,
    });
    role.addToPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    const fn = new LambdaFunction(this, spec.name, {
      functionName,
      runtime: Runtime.PROVIDED_AL2023,
      architecture: this.settings.local ? Architecture.X86_64 : Architecture.ARM_64,
      handler: 'bootstrap',
      code: Code.fromAsset(path.join(this.settings.assetDir, spec.name)),
      memorySize: spec.memoryMb,
      timeout: spec.timeout,
      role,
      logGroup,
      environment: { LOG_LEVEL: this.settings.logLevel, ...spec.environment },
      tracing: this.settings.tracing ? Tracing.ACTIVE : Tracing.DISABLED,
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5',
      reason:
        'The log group ARN ends in :* because Lambda names log streams per execution environment; ' +
        "the grant is limited to this function's own log group. dynamodb:ListStreams, added by the " +
        'DynamoDB event source, has no resource-level permissions.',
    });
    if (this.settings.tracing) {
      Validations.of(role).acknowledge({
        id: 'AwsSolutions::AwsSolutions-IAM5[Resource::*]',
        reason:
          'Active tracing adds xray:PutTraceSegments and xray:PutTelemetryRecords, which have no ' +
          'resource-level permissions in IAM.',
      });
    }
    return fn;
  }

  /** A dead-letter queue: encrypted, TLS only, kept for the longest retention SQS allows. */
  private deadLetterQueue(id: string): Queue {
    const dlq = new Queue(this, id, {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    Validations.of(dlq).acknowledge({ id: 'AwsSolutions-SQS3', reason: 'This queue is itself a dead-letter destination.' });
    return dlq;
  }

  /** Alarm as soon as anything sits in a dead-letter queue. */
  private alarmOnDepth(id: string, dlq: Queue, alarmTopic: Topic): Alarm {
    const alarm = new Alarm(this, `${id}DepthAlarm`, {
      alarmDescription: `Messages are waiting in ${id}: inspect them, fix the cause, then redrive.`,
      metric: dlq.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new SnsAction(alarmTopic));
    return alarm;
  }

  /**
   * An SQS consumer of the domain-event topic: its own queue (raw delivery, filtered on the
   * `type` attribute), a DLQ after five receives, an alarm on the DLQ, and a mapping that
   * reports partial batch failures.
   */
  private consumer(
    name: string,
    eventTypes: string[],
    environment: Record<string, string>,
    topic: Topic,
    alarmTopic: Topic,
  ): Consumer {
    const local = this.settings.local;
    const timeout = Duration.seconds(local ? 3 : 10);
    const fn = this.rustFunction({ name, memoryMb: 128, timeout, environment });
    const dlq = this.deadLetterQueue(`${pascal(name)}Dlq`);
    const queue = new Queue(this, `${pascal(name)}Queue`, {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS guidance: at least six times the function timeout, so a message is not redelivered
      // while a slow batch still holds it. Local mode trades that for fast DLQ tests.
      visibilityTimeout: local ? Duration.seconds(5) : Duration.seconds(timeout.toSeconds() * 6),
      deadLetterQueue: { queue: dlq, maxReceiveCount: 5 },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    topic.addSubscription(
      new SqsSubscription(queue, {
        rawMessageDelivery: true,
        filterPolicy: { type: SubscriptionFilter.stringFilter({ allowlist: eventTypes }) },
      }),
    );
    fn.addEventSource(new SqsEventSource(queue, { batchSize: 10, reportBatchItemFailures: true }));
    this.alarmOnDepth(`${pascal(name)}Dlq`, dlq, alarmTopic);
    return { fn, queue, dlq };
  }
}

function pascal(kebab: string): string {
  return kebab
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

