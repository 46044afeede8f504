using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Molecule.Agents;
using Molecule.Agents.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers a Molecule agent in a generic host (a worker service, an ASP.NET Core app).</summary>
public static class MoleculeServiceCollectionExtensions
{
    /// <summary>
    /// Runs a Molecule agent as a hosted service whose inbound messages go to <typeparamref name="THandler"/> (scoped:
    /// one instance per message). The options come from <paramref name="configuration"/> — typically
    /// <c>configuration.GetSection("Molecule")</c>, with keys <c>WorkspaceId</c>, <c>PlatformUrl</c>, <c>Token</c>, … or
    /// the variable names of <c>molecule-mcp</c> (<c>WORKSPACE_ID</c>, …) — and are judged when the host starts: bad
    /// ones fail the start with a <see cref="MoleculeOptionsException"/> naming every problem, in <c>molecule-mcp</c>'s
    /// words.
    /// </summary>
    /// <remarks>
    /// Stopping the host lets the message in hand finish (within <c>HostOptions.ShutdownTimeout</c>), then leaves the
    /// inbox consistent; what was not handled comes at the next start. Should the platform refuse the workspace, the
    /// service logs it, sets <see cref="Environment.ExitCode"/> to the code <c>molecule-mcp</c> exits with, and stops
    /// the application.
    /// </remarks>
    public static IServiceCollection AddMoleculeAgent<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] THandler>(
        this IServiceCollection services, IConfiguration configuration)
        where THandler : class, IMoleculeMessageHandler
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.TryAddScoped<IMoleculeMessageHandler, THandler>();
        return services.AddMoleculeAgent(_ => MoleculeOptions.FromConfiguration(configuration));
    }

    /// <summary>
    /// As <see cref="AddMoleculeAgent{THandler}(IServiceCollection, IConfiguration)"/>, with the options made by
    /// <paramref name="options"/> when the host starts (from the environment, in code, from several sources), and the
    /// handler registered by you as <see cref="IMoleculeMessageHandler"/>.
    /// </summary>
    public static IServiceCollection AddMoleculeAgent(this IServiceCollection services, Func<IServiceProvider, MoleculeOptions> options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        services.AddHostedService(provider => new MoleculeAgentService(options(provider),
            provider.GetRequiredService<IServiceScopeFactory>(), provider.GetRequiredService<IHostApplicationLifetime>(),
            provider.GetService<ILoggerFactory>()));
        return services;
    }
}
