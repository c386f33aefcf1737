using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using k8s.Models;
using Skiff.Api;
using Skiff.Crds;

namespace Skiff.IntegrationTests.Infrastructure;

/// <summary>
/// The two seed stacks of the original setup, written once for every harness: the API (PostgreSQL, a migration, an
/// HTTP health check on a named port) and the bot (Redis with an append-only file, a token from the Secret
/// <see cref="BotSecretName"/>). The Docker target drives the objects; the folder and kubectl harnesses write them as
/// YAML through <see cref="Yaml"/>. Each call returns a new object, so a test may change it freely.
/// </summary>
/// <remarks>The images are the local <see cref="TestImages"/> (<c>imagePullPolicy: Never</c>); health checks are probed every second.</remarks>
public static class Stacks
{
    public const string BotSecretName = "bot-secrets";
    public const string BotTokenKey = "token";
    public const string BotToken = "bot-token-value-123";

    private static readonly JsonSerializerOptions Json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>The API: its PostgreSQL, the migration <c>testapp migrate</c>, <c>/healthz</c> on the port named http.</summary>
    /// <param name="name">The resource's name.</param>
    /// <param name="ns">Its namespace; none for kubectl, which gives one with <c>-n</c>.</param>
    /// <param name="image">The app's image.</param>
    /// <param name="node">The node that runs it.</param>
    /// <param name="deadline">The rollout's <c>progressDeadlineSeconds</c>.</param>
    public static AppDeployment Api(string name = "api", string? ns = null, string image = TestImages.App1, string node = "local", int deadline = 60)
    {
        var api = Stateless(name, ns, node, image);
        api.Spec.App.Ports = [new PortSpec { Name = "http", ContainerPort = 8080 }];
        api.Spec.App.HealthCheck!.Http.Port = "http";
        api.Spec.App.Migrate = new MigrateSpec { Command = ["testapp", "migrate"] };
        api.Spec.Database = new DatabaseSpec { Image = TestImages.Postgres };
        api.Spec.Rollout = new RolloutSpec { ProgressDeadlineSeconds = deadline };
        return api;
    }

    /// <summary>The bot: its Redis (append-only file, 64Mi), and <c>TOKEN</c> from <see cref="BotSecret"/>.</summary>
    public static AppDeployment Bot(string name = "bot", string? ns = null, string node = "local")
    {
        var bot = Stateless(name, ns, node);
        bot.Spec.App.Env =
        [
            new EnvVar { Name = "TOKEN", ValueFrom = new EnvVarSource { SecretKeyRef = new SecretKeySelector { Name = BotSecretName, Key = BotTokenKey } } },
        ];
        bot.Spec.Cache = new CacheSpec { Image = TestImages.Redis, Persistence = PersistenceModes.Aof, MaxMemory = "64Mi" };
        return bot;
    }

    /// <summary>The bot's Secret, holding <see cref="BotToken"/>.</summary>
    public static V1Secret BotSecret(string? ns = null) => new()
    {
        ApiVersion = "v1",
        Kind = "Secret",
        Metadata = new V1ObjectMeta { Name = BotSecretName, NamespaceProperty = ns },
        StringData = new Dictionary<string, string> { [BotTokenKey] = BotToken },
    };

    /// <summary>The app alone (what both stacks run): no data, no secret, <c>/healthz</c> on port 8080.</summary>
    public static AppDeployment Stateless(string name, string? ns = null, string node = "local", string image = TestImages.App1) => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
        Spec = new AppDeploymentSpec
        {
            Node = node,
            App = new AppSpec
            {
                Image = image,
                ImagePullPolicy = PullPolicies.Never,
                HealthCheck = new HealthCheckSpec { Http = new HttpCheck { Path = "/healthz", Port = 8080 }, PeriodSeconds = 1 },
            },
        },
    };

    /// <summary>Changes the spec and returns the same resource, for one-expression variants.</summary>
    public static AppDeployment With(this AppDeployment resource, Action<AppDeploymentSpec>? edit)
    {
        edit?.Invoke(resource.Spec);
        return resource;
    }

    /// <summary>Adds a literal environment variable to the app.</summary>
    public static AppDeployment WithEnv(this AppDeployment resource, string name, string value)
    {
        resource.Spec.App.Env = [.. resource.Spec.App.Env ?? [], new EnvVar { Name = name, Value = value }];
        return resource;
    }

    /// <inheritdoc cref="WithEnv(AppDeployment, string, string)"/>
    public static AppDeployment WithEnv(this AppDeployment resource, string name, int value) =>
        resource.WithEnv(name, value.ToString(CultureInfo.InvariantCulture));

    /// <summary>
    /// The documents as one YAML file for a folder or <c>kubectl apply</c>, separated by <c>---</c> lines (none before the
    /// first), fields in the order the types declare them, unset ones left out.
    /// </summary>
    public static string Yaml(params object[] documents) =>
        string.Join("---\n", documents.Select(d =>
        {
            var yaml = YamlWriter.Write([JsonSerializer.SerializeToNode(d, d.GetType(), Json)!]);
            return yaml.StartsWith("---\n", StringComparison.Ordinal) ? yaml["---\n".Length..] : yaml;
        }));
}
