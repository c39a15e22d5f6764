#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { EventlyStack, settingsFromContext } from '../lib/evently-stack';

const app = new App();
const settings = settingsFromContext(app);
new EventlyStack(app, settings.stackName, settings);
// cdk-nag fails synth on any AwsSolutions finding that is not suppressed with a reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
